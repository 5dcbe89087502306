"""The trainer: one linear ``train_and_evaluate`` in commented phases.

Phases: devices and mesh → data → model, optimizer and state → checkpoint
resume → the sharded step → the loop (metrics, checkpoints, evaluation every
``train.eval_every`` steps, SIGTERM, non-finite guard).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from gait_jax import checkpoint as ckpt_lib
from gait_jax import evaluate
from gait_jax import losses
from gait_jax import models
from gait_jax import optim
from gait_jax import parallel
from gait_jax import protocols
from gait_jax.data import augment as augment_lib
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource
from gait_jax.metric_writer import MetricWriter
from gait_jax.metric_writer import format_scalars

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16,
          'float16': jnp.float16}


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; replicated over the mesh."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradients became NaN/Inf."""


def compute_dtype(config) -> Any:
  name = config.train.compute_dtype
  if name not in DTYPES:
    raise ValueError(f'train.compute_dtype={name!r}; valid: {sorted(DTYPES)}')
  return DTYPES[name]


def eval_every(config) -> int:
  """``config.train.eval_every`` (0 = no evaluation during training)."""
  every = config.train.eval_every
  if isinstance(every, bool) or not isinstance(every, int) or every < 0:
    raise ValueError(f'train.eval_every={every!r}; it must be an integer '
                     '>= 0 (0 = off).')
  return every


def make_mesh(config) -> jax.sharding.Mesh:
  """The 'data' mesh over ``config.train.num_devices`` devices (-1 = all)."""
  num_devices = config.train.num_devices
  return parallel.make_mesh(None if num_devices < 0 else num_devices)


def num_classes(config, classes) -> int:
  """``config.model.num_classes``, or the training-subject count if -1."""
  return config.model.num_classes if config.model.num_classes > 0 else len(
      classes)


def build_model(config, num_classes: int, axis_name: str | None):
  """The model named by ``config.model`` (num_classes=-1 → from the data)."""
  kwargs = dict(config.model)
  name = kwargs.pop('name')
  if kwargs.get('num_classes', -1) == -1:
    kwargs['num_classes'] = num_classes
  return models.get_model(name, axis_name=axis_name,
                          dtype=compute_dtype(config), **kwargs)


def init_state(model, tx, config, mesh) -> TrainState:
  """Initialises parameters from ``config.seed``, replicated on ``mesh``."""
  num_frames = config.data.num_frames

  def init(rng):
    sils = jnp.zeros((2, num_frames, 64, 44), jnp.float32)
    variables = model.init(rng, sils, mask=None, train=False)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=tx.init(params))

  rng = jax.random.key(config.seed)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))(rng)


def state_from_variables(config, num_classes: int, variables) -> TrainState:
  """A train state (fresh optimizer) holding given model ``variables``."""
  mesh = make_mesh(config)
  model = build_model(config, num_classes, axis_name=None)
  schedule = optim.make_schedule(config.optim, config.schedule,
                                 config.train.num_steps)
  tx = optim.make_optimizer(config.optim, schedule)
  state = init_state(model, tx, config, mesh)
  params = jax.tree.map(jnp.asarray, variables['params'])
  stats = jax.tree.map(jnp.asarray, variables.get('batch_stats', {}))
  want = jax.tree.structure((state.params, state.batch_stats))
  if jax.tree.structure((params, stats)) != want:
    raise ValueError('The converted variables do not match the structure of '
                     f'model {config.model.name!r} built from the config.')
  state = state.replace(params=params, batch_stats=stats,
                        opt_state=tx.init(params))
  return jax.device_put(state, parallel.replicated(mesh))


def make_step_fn(model, tx, schedule, loss_config, samples_per_class: int,
                 dtype):
  """The per-device train step ``(state, batch) -> (state, metrics)``.

  Runs inside ``shard_map`` over ``parallel.DATA_AXIS``. The loss is the
  global-batch loss (``losses.compute_loss`` all-gathers embeddings and
  combines per-device sums); the gradient each device computes is the
  derivative of that loss through its own share of the computation (its
  samples, its anchors), so the full-batch gradient is their ``psum``. A step
  whose loss or gradient is not finite leaves the state unchanged.
  """
  axis = parallel.DATA_AXIS

  def step_fn(state: TrainState, batch):
    sils = transforms.to_unit_range(batch['sils'], dtype)  # [b, s, 64, 44]
    # Each device differentiates w.r.t. its own (varying) copy of the params.
    params = jax.lax.pcast(state.params, axis, to='varying')

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      outputs, mutated = model.apply(variables, sils, mask=batch['mask'],
                                     train=True, mutable=['batch_stats'])
      loss, metrics = losses.compute_loss(
          outputs, batch['labels'], loss_config,
          samples_per_class=samples_per_class, axis_name=axis)
      return loss, (metrics, mutated.get('batch_stats', {}))

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    grads = jax.lax.psum(grads, axis)  # Full-batch gradient, replicated.
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(step=state.step + 1, params=params,
                     batch_stats=batch_stats, opt_state=opt_state)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    metrics = dict(metrics)
    metrics.update({
        'lr': schedule(state.step), 'grad_norm': grad_norm,
        'param_norm': optax.global_norm(params),
        'finite': finite.astype(jnp.float32)})
    return new, metrics

  return step_fn


def open_data(config):
  """Train/test sources of ``config.data.dataset_dir`` and the class list."""
  if not config.data.dataset_dir:
    raise ValueError('config.data.dataset_dir is empty: point it at a TFDS '
                     'gait dataset (<data_dir>/<name>/<version>).')
  train_src = GaitSource(config.data.dataset_dir, 'train')
  classes = train_src.train_classes()
  return train_src, classes


class _SigtermFlag:
  """Set by SIGTERM; the loop saves a checkpoint and returns cleanly."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: no handler, nothing to restore.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from ``workdir`` if it holds a checkpoint).

  Args:
    config: a locked experiment config (``gait_jax.config`` schema).
    workdir: checkpoints, TensorBoard files and reports go here.

  Returns:
    The final train state.

  Raises:
    NonFiniteLossError: the loss became NaN/Inf; the last checkpoint is kept.
    checkpoint.CheckpointMismatchError: ``workdir`` holds another model.
  """
  every = eval_every(config)  # Validates early.
  # --- Devices and mesh.
  mesh = make_mesh(config)
  global_batch = config.data.p * config.data.k
  parallel.check_batch_divisible(global_batch, mesh)

  # --- Data: the stateless P×K sampler and this host's loader.
  augment = augment_lib.from_config(config.data.augment)  # Validates early.
  train_src, classes = open_data(config)
  sampler = sampling.PKSampler(
      train_src.subject_indices(classes), config.data.p, config.data.k,
      seed=config.seed, batch_shuffle=config.data.batch_shuffle)
  loader = pipeline.TrainBatchLoader(
      train_src, sampler, frame_sampler=config.data.frame_sampler,
      num_frames=config.data.num_frames, frames_skip=config.data.frames_skip,
      process_index=jax.process_index(), process_count=jax.process_count(),
      augment=augment)

  # --- Model, optimizer, state.
  model = build_model(config, len(classes), axis_name=parallel.DATA_AXIS)
  total = config.train.num_steps
  schedule = optim.make_schedule(config.optim, config.schedule, total)
  tx = optim.make_optimizer(config.optim, schedule)
  state = init_state(model, tx, config, mesh)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  _say(f'Model {config.model.name}/{config.model.get("variant", "")}: '
       f'{num_params:,} parameters, {len(classes)} classes, {mesh.size} '
       f'devices, P×K={config.data.p}×{config.data.k}; process '
       f'{jax.process_index()} of {jax.process_count()}.', every_process=True)

  # --- Checkpoints: resume from the workdir if it holds one.
  checkpointer = ckpt_lib.Checkpointer(workdir,
                                       max_to_keep=config.train.keep_ckpts)
  meta = ckpt_lib.checkpoint_meta(config)
  meta['model']['num_classes'] = num_classes(config, classes)
  start = checkpointer.latest_step()
  if start is None:
    start = 0
  else:  # Resume (or fine-tune a converted checkpoint, saved as step 0).
    checkpointer.check_compatible(meta, start)
    state = checkpointer.restore(state, start)
    _say(f'Resumed from step {start} of {checkpointer.directory}.')

  # --- The sharded step.
  step_fn = make_step_fn(model, tx, schedule, config.loss, config.data.k,
                         compute_dtype(config))
  p_step = parallel.shard_step(step_fn, mesh)

  # --- Evaluation during training (built once: one compilation per bucket).
  evaluator = PeriodicEvaluator(config, len(classes), mesh, workdir,
                                every) if every else None

  # --- The loop.
  writer = MetricWriter(workdir)
  batches = pipeline.train_iterator(loader, start, total,
                                    workers=config.data.workers,
                                    prefetch=config.data.prefetch)
  state = _loop(config, state, p_step, batches, mesh, start, total, writer,
                checkpointer, meta, evaluator)
  writer.close()
  checkpointer.close()
  return state


def _loop(config, state, p_step, batches, mesh, start, total, writer,
          checkpointer, meta, evaluator=None):
  """Runs steps ``start .. total - 1``; see ``train``."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  log_every, ckpt_every = config.train.log_every, config.train.ckpt_every
  pending = None  # (step, metrics) of the previous step: checked one late.
  timer = (time.perf_counter(), start)
  bar = tqdm(total=total, initial=start, desc='train', unit='step',
             disable=jax.process_index() != 0, mininterval=2.0)
  with _SigtermFlag() as sigterm:
    for step in range(start, total):
      host = next(batches)
      if int(host['step']) != step:
        raise RuntimeError(f'Data pipeline out of order: batch for step '
                           f'{int(host["step"])} at step {step}.')
      batch = parallel.host_to_global(
          mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
      state, metrics = p_step(state, batch)
      if pending is not None:
        _check_finite(*pending, checkpointer)
      pending = (step, metrics)
      done = step + 1
      bar.update(1)
      if done % log_every == 0 or done == total:
        _check_finite(*pending, checkpointer)
        scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
        now = time.perf_counter()
        scalars['steps_per_sec'] = (done - timer[1]) / (now - timer[0])
        timer = (now, done)
        writer.write_scalars(done, scalars)
        bar.set_postfix(loss=f'{scalars["loss/total"]:.4f}')
        _say(f'step {done}: {format_scalars(scalars)}', bar)
      if done % ckpt_every == 0 or done == total or sigterm.raised:
        _check_finite(*pending, checkpointer)
        checkpointer.save(done, state, meta, force=True)
      if evaluator is not None and evaluator.due(done) and not sigterm.raised:
        _check_finite(*pending, checkpointer)
        seconds = evaluator.run(done, state, writer, bar)
        timer = (timer[0] + seconds, timer[1])  # steps_per_sec: training only.
      if sigterm.raised:
        logging.warning('SIGTERM: saved step %d to %s; exiting.', done,
                        checkpointer.directory)
        _say(f'SIGTERM: saved step {done}; exiting.', bar)
        break
  bar.close()
  return state


class PeriodicEvaluator:
  """Scores the train state on the test split (``train.eval_every``).

  The eval-mode model, the test source and the jitted embedding function are
  built once, so evaluations after the first reuse their compilations. The
  state is read where it lies (replicated on the training mesh, no copy to the
  host) and not changed: BatchNorm uses its running statistics and nothing
  draws random numbers, so training goes on exactly as without evaluation.
  Every process must run it (the embeddings are all-gathered); only process 0
  writes.

  Args:
    config: the experiment config (its ``eval`` section; plots are skipped).
    num_classes: classifier size of the trained model.
    mesh: the training mesh.
    workdir: where ``eval_<step>.json`` goes.
    every: evaluate at the steps that are multiples of this.
  """

  def __init__(self, config, num_classes: int, mesh, workdir: str,
               every: int):
    self.every = every
    self._eval_cfg = config.eval
    self._mesh = mesh
    self._workdir = workdir
    self._dtype = compute_dtype(config)
    self._source = evaluate.open_test_source(config)
    evaluate.protocol_name(config.eval, self._source)  # Fails early.
    self._model = build_model(config, num_classes, axis_name=None)
    self._embed = evaluate.make_embed_fn(self._model, mesh, self._dtype)

  def due(self, step: int) -> bool:
    """Whether to evaluate after ``step`` steps (never at step 0)."""
    return step > 0 and step % self.every == 0

  def evaluate(self, state: TrainState) -> protocols.ProtocolResult:
    """The protocol result of ``state``'s parameters and BN statistics."""
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    result, _ = evaluate.evaluate_source(
        self._model, variables, self._source, self._mesh, self._eval_cfg,
        self._dtype, embed=self._embed)
    return result

  def run(self, step: int, state: TrainState, writer: MetricWriter,
          bar=None) -> float:
    """Evaluates, writes scalars and ``eval_<step>.json``, prints a line.

    Returns:
      The seconds it took.
    """
    began = time.perf_counter()
    result = self.evaluate(state)
    summary = result.summary()
    writer.write_scalars(step, {f'eval/{k}': v for k, v in summary.items()})
    if jax.process_index() == 0:
      evaluate.write_report(result, self._workdir, step)
    seconds = time.perf_counter() - began
    numbers = ' '.join(f'{k}={v:.2f}' for k, v in summary.items())
    _say(f'eval at step {step} ({result.protocol}): {numbers} '
         f'({seconds:.1f} s)', bar)
    return seconds


def _say(message: str, bar=None, every_process: bool = False) -> None:
  """Prints a progress line (process 0 only unless ``every_process``)."""
  logging.info(message)
  if every_process or jax.process_index() == 0:
    if bar is not None:
      bar.write(message)
    else:
      print(message, flush=True)


def _check_finite(step: int, metrics, checkpointer) -> None:
  if float(metrics['finite']) < 1.0:
    checkpointer.wait()
    raise NonFiniteLossError(
        f'Non-finite loss or gradient at step {step + 1} (loss='
        f'{float(metrics["loss/total"])}, grad_norm='
        f'{float(metrics["grad_norm"])}). Training stopped; the state of '
        f'step {step} was not updated and the last good checkpoint '
        f'(step {checkpointer.latest_step()}) in {checkpointer.directory} is '
        'kept. Lower optim.lr or check the data.')


def latest_variables(config, workdir: str):
  """Model variables of the latest checkpoint in ``workdir`` (for eval)."""
  train_src, classes = open_data(config)
  del train_src
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False)
  step = checkpointer.latest_step()
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {checkpointer.directory}.')
  meta = ckpt_lib.checkpoint_meta(config)
  meta['model']['num_classes'] = num_classes(config, classes)
  checkpointer.check_compatible(meta, step)
  mesh = make_mesh(config)
  model = build_model(config, len(classes), axis_name=None)
  schedule = optim.make_schedule(config.optim, config.schedule,
                                 config.train.num_steps)
  tx = optim.make_optimizer(config.optim, schedule)
  state = checkpointer.restore(init_state(model, tx, config, mesh), step)
  checkpointer.close()
  return model, {'params': state.params, 'batch_stats': state.batch_stats}, step

