"""Config → objects: every builder the entry points share.

The trainer, the ahead-of-time check, the command modes, the benchmarks, the
scripts and the tests build their mesh, model, optimizer, train state and
sharded step here, from a config, so that each recipe exists once:

  n = experiment.num_classes(config)
  training = experiment.build_training(config, n)
  state, metrics = training.step(training.state, batch)

``num_classes`` is the one place the classifier size is decided, and
``checkpoint_meta`` the one place a checkpoint's identity is written.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gait_jax import checkpoint as ckpt_lib
from gait_jax import models
from gait_jax import optim
from gait_jax import parallel
from gait_jax import train_step
from gait_jax.data import transforms
from gait_jax.data.source import read_metadata

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16,
          'float16': jnp.float16}


def compute_dtype(config) -> Any:
  """The dtype of activations, ``config.train.compute_dtype``."""
  name = config.train.compute_dtype
  if name not in DTYPES:
    raise ValueError(f'train.compute_dtype={name!r}; valid: {sorted(DTYPES)}')
  return DTYPES[name]


def make_mesh(config) -> jax.sharding.Mesh:
  """The 'data' mesh over ``config.train.num_devices`` devices (-1 = all)."""
  num_devices = config.train.num_devices
  return parallel.make_mesh(None if num_devices < 0 else num_devices)


def num_classes(config, *, checkpoint: Any = None) -> int:
  """The classifier size of ``config.model``.

  In this order: ``config.model.num_classes`` when it is positive; else the
  class count of ``checkpoint`` (an OpenGait checkpoint being converted, path
  or state dict) when its model has a classifier; else the training subjects
  of the dataset's metadata (or, for a synthetic dataset not yet built, its
  ``num_train_subjects``).

  Args:
    config: the experiment config.
    checkpoint: an OpenGait checkpoint that will be converted, if any.

  Returns:
    The class count.

  Raises:
    ValueError: none of the three sources gives one.
  """
  configured = int(config.model.num_classes)
  if configured > 0:
    return configured
  if checkpoint is not None:
    from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
    found = torch_compat.checkpoint_num_classes(checkpoint, config.model.name)
    if found is not None:
      return int(found)
  dataset_dir = config.data.dataset_dir
  if dataset_dir and os.path.isdir(dataset_dir):
    return len(read_metadata(dataset_dir)['train_subjects'])
  if config.data.source in ('synthetic', 'synthetic_wild'):
    return int(config.data[config.data.source].num_train_subjects)
  raise ValueError(
      'model.num_classes=-1 means "from the data", but data.dataset_dir='
      f'{dataset_dir!r} is not a dataset directory. Set '
      '--config.model.num_classes or --config.data.dataset_dir.')


def build_model(config, num_classes: int, *, axis_name: str | None = None):
  """The model of ``config.model`` with ``num_classes`` classes.

  Args:
    config: the experiment config.
    num_classes: classifier size (``num_classes(config)``).
    axis_name: ``parallel.DATA_AXIS`` inside the sharded train step (BatchNorm
      statistics over the global batch); None for evaluation.

  Returns:
    An unbound Linen module.
  """
  kwargs = dict(config.model)
  name = kwargs.pop('name')
  kwargs['num_classes'] = num_classes
  return models.get_model(name, axis_name=axis_name,
                          dtype=compute_dtype(config), **kwargs)


def build_optimizer(config) -> tuple[optax.GradientTransformation,
                                     Callable[[Any], Any]]:
  """The optimizer of ``config.optim`` and its ``config.schedule``."""
  return optimizer_from(config.optim, config.schedule, config.train.num_steps)


def optimizer_from(optim_cfg, schedule_cfg, total_steps: int
                   ) -> tuple[optax.GradientTransformation,
                              Callable[[Any], Any]]:
  """``(optimizer, schedule of the default group)`` of the config sections;
  every parameter group's schedule starts from its own learning rate."""
  schedule = optim.make_schedule(optim_cfg, schedule_cfg, total_steps)

  def group_schedule(lr: float) -> Callable[[Any], Any]:
    return optim.make_schedule({**dict(optim_cfg), 'lr': lr}, schedule_cfg,
                               total_steps)
  return optim.make_optimizer(optim_cfg, schedule, group_schedule), schedule


def input_shape(config) -> tuple[int, int]:
  """(H, W) of the model's input frames under ``config.data.cut_width``."""
  return transforms.frame_shape(
      transforms.check_cut(config.data.get('cut_width', True)))


def init_state(config, model, tx: optax.GradientTransformation,
               mesh: jax.sharding.Mesh) -> train_step.TrainState:
  """Initial parameters from ``config.seed``, replicated on ``mesh``."""

  def init(rng):
    sils = jnp.zeros((2, config.data.num_frames) + input_shape(config),
                     jnp.float32)  # [n, s, h, w]
    variables = model.init(rng, sils, mask=None, train=False)
    params = variables['params']
    return train_step.TrainState(
        step=jnp.zeros((), jnp.int32), params=params,
        batch_stats=variables.get('batch_stats', {}),
        opt_state=tx.init(params))

  rng = jax.random.key(config.seed)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))(rng)


def abstract_batch(config, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """Shapes and shardings of one global P×K training batch."""
  batch, s = config.data.p * config.data.k, config.data.num_frames
  sharded = parallel.batch_sharded(mesh)
  return {
      'sils': jax.ShapeDtypeStruct((batch, s) + input_shape(config),
                                   jnp.uint8, sharding=sharded),
      'labels': jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=sharded),
      'mask': jax.ShapeDtypeStruct((batch, s), jnp.bool_, sharding=sharded),
  }


@dataclasses.dataclass
class Training:
  """What a training run is built from (see ``build_training``).

  Attributes:
    mesh: the 'data' mesh.
    model: the train-mode model (BatchNorm over the mesh axis).
    eval_model: the same network for evaluation (no mesh axis).
    tx: the optimizer.
    schedule: its learning-rate schedule.
    state: the initial train state, replicated on ``mesh`` (shape-only
      ``jax.ShapeDtypeStruct`` leaves when built with ``abstract=True``).
    step: the jitted sharded step ``(state, batch) -> (state, metrics)``.
    num_classes: classifier size.
  """
  mesh: jax.sharding.Mesh
  model: Any
  eval_model: Any
  tx: optax.GradientTransformation
  schedule: Callable[[Any], Any]
  state: Any
  step: Callable[..., Any]
  num_classes: int

  @property
  def num_params(self) -> int:
    return int(sum(np.prod(x.shape) for x in
                   jax.tree.leaves(self.state.params)))


def build_training(config, num_classes: int, *,
                   mesh: jax.sharding.Mesh | None = None,
                   abstract: bool = False,
                   donate_state: bool = True) -> Training:
  """Model, optimizer, initial state and sharded step of ``config``.

  Args:
    config: the experiment config.
    num_classes: classifier size (``num_classes(config)``).
    mesh: the mesh (default ``make_mesh(config)``).
    abstract: build the state as shapes only (no parameters are computed),
      for lowering and compiling without data.
    donate_state: let the step reuse the input state's buffers.

  Returns:
    A ``Training``.

  Raises:
    ValueError: the global batch does not split over the mesh.
  """
  mesh = make_mesh(config) if mesh is None else mesh
  parallel.check_batch_divisible(config.data.p * config.data.k, mesh)
  model = build_model(config, num_classes, axis_name=parallel.DATA_AXIS)
  tx, schedule = build_optimizer(config)
  if abstract:
    replicated = parallel.replicated(mesh)
    state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
        jax.eval_shape(lambda: init_state(config, model, tx, mesh)))
  else:
    state = init_state(config, model, tx, mesh)
  step_fn = train_step.make_step_fn(model, tx, schedule, config.loss,
                                    config.data.k, compute_dtype(config),
                                    seed=config.seed)
  step = parallel.shard_step(
      step_fn, mesh, donate_state=donate_state,
      compiler_options=models.remat_compiler_options(
          config.model.get('remat', 'none'), mesh.devices.flat[0].platform))
  return Training(mesh=mesh, model=model,
                  eval_model=build_model(config, num_classes),
                  tx=tx, schedule=schedule, state=state, step=step,
                  num_classes=num_classes)


def state_from_variables(config, num_classes: int, variables,
                         mesh: jax.sharding.Mesh | None = None
                         ) -> train_step.TrainState:
  """A step-0 train state (fresh optimizer) holding model ``variables``.

  Raises:
    ValueError: ``variables`` do not have the structure of the config's model.
  """
  mesh = make_mesh(config) if mesh is None else mesh
  model = build_model(config, num_classes)
  tx, _ = build_optimizer(config)
  state = init_state(config, model, tx, mesh)
  params = jax.tree.map(jnp.asarray, variables['params'])
  stats = jax.tree.map(jnp.asarray, variables.get('batch_stats', {}))
  want = jax.tree.structure((state.params, state.batch_stats))
  if jax.tree.structure((params, stats)) != want:
    raise ValueError('The converted variables do not match the structure of '
                     f'model {config.model.name!r} built from the config.')
  state = state.replace(params=params, batch_stats=stats,
                        opt_state=tx.init(params))
  return jax.device_put(state, parallel.replicated(mesh))


def checkpoint_meta(config, num_classes: int) -> dict[str, Any]:
  """What identifies a checkpoint of ``config`` (model, optimizer, schedule),
  with the class count resolved."""
  meta = ckpt_lib.checkpoint_meta(config)
  meta['model']['num_classes'] = int(num_classes)
  return meta


def restore_variables(config, workdir: str, *,
                      mesh: jax.sharding.Mesh | None = None
                      ) -> tuple[Any, dict[str, Any], int]:
  """The eval-mode model and the variables of ``workdir``'s newest checkpoint
  that restores.

  Returns:
    ``(model, {'params', 'batch_stats'}, step)``.

  Raises:
    FileNotFoundError: the workdir holds no checkpoint.
    checkpoint.CheckpointMismatchError: it holds another model's.
  """
  n = num_classes(config)
  mesh = make_mesh(config) if mesh is None else mesh
  model = build_model(config, n)
  tx, _ = build_optimizer(config)
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False)
  try:
    restored = checkpointer.restore_latest(
        init_state(config, model, tx, mesh), checkpoint_meta(config, n))
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f'No checkpoint in {checkpointer.directory}.')
  state, step = restored
  return model, {'params': state.params,
                 'batch_stats': state.batch_stats}, step
