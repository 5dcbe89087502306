"""Every model's train and eval programs export for CUDA and TPU, without
their CPU-tuned forms.

``jax.export`` lowers a jitted function for platforms this machine does not
have. The train step exported is the trainer's own: ``jit(shard_map(step))``
from ``experiment.build_training(..., abstract=True)`` on the 4-device 'data'
mesh of tests/conftest.py, with the shardings of its abstract arguments; the
eval step is ``evaluation.extract.make_embed_fn``. With ``ops='auto'`` the
ops seam picks its forms by ``lax.platform_dependent``; the markers of the
CPU-tuned forms are those of tests/test_ops.py:

* ``optimization_barrier``: the tuned 2-D convolution's backward pass (nothing
  in these programs uses remat);
* ``reduce_window``: the reference max pool (the tuned one is a reshape and a
  max), so a model with max pools has it in its CUDA/TPU program and not in
  the forward pass of its CPU program (the CPU train step keeps a few
  ``reduce_window`` from elsewhere, so there it is counted);
* a 3-D convolution (GaitGL) and a grouped convolution (GaitPart): the
  reference forms of the time-folded 3-D convolution and the per-part
  temporal convolution.

Each check is also made on a CPU export of the same program, where it must
find the tuned forms, so that a check that can never fail fails.
"""

import importlib
import re

import jax
import jax.numpy as jnp
import pytest

from gait_jax import experiment
from gait_jax import parallel
from gait_jax.data import transforms
from gait_jax.evaluation import extract

ACCELERATORS = ('cuda', 'tpu')
MODELS = ('gaitset', 'gaitpart', 'gaitgl', 'baseline', 'gaitbase', 'deepgaitv2',
          'trackletgait', 'swingait')
# The recipe each model is exported with: its CASIA-B one where there is one.
RECIPES = {'trackletgait': 'trackletgait_gait3d', 'swingait': 'swingait_gait3d'}
WITH_MAX_POOL = ('gaitset', 'gaitpart', 'gaitgl', 'baseline')
_CONV3D = re.compile(r'dim_numbers = \[b, 0, 1, 2, f\]')
_GROUPED = re.compile(r'feature_group_count = (?:[2-9]|\d\d+)')
_FRAMES = 6  # A multiple of 3 (GaitGL pools frames in threes).


def _config(name: str):
  """The model's recipe (`RECIPES`) at its tiny variant, P×K 2×2 on 4
  devices."""
  recipe = RECIPES.get(name, f'{name}_casia_b')
  config = importlib.import_module(f'configs.{recipe}').get_config('')
  config.model.variant = 'tiny'
  config.model.num_classes = 8
  config.data.p, config.data.k = 2, 2
  config.data.num_frames = _FRAMES
  config.train.num_devices = 4
  return config


def _exported_texts(name: str) -> dict[tuple[str, str], str]:
  """StableHLO of the train and eval steps, per (step, platforms)."""
  config = _config(name)
  mesh = experiment.make_mesh(config)
  assert mesh.size == 4
  training = experiment.build_training(config, 8, mesh=mesh, abstract=True)
  batch = experiment.abstract_batch(config, mesh)
  embed = extract.make_embed_fn(training.eval_model, mesh)
  variables = {'params': training.state.params,
               'batch_stats': training.state.batch_stats}
  sharded = parallel.batch_sharded(mesh)
  sils = jax.ShapeDtypeStruct((4, _FRAMES) + transforms.FRAME_SHAPE,
                              jnp.uint8, sharding=sharded)  # [b, s, h, w]
  mask = jax.ShapeDtypeStruct((4, _FRAMES), jnp.bool_, sharding=sharded)
  texts = {}
  for platforms in (ACCELERATORS, ('cpu',)):
    key = 'gpu_tpu' if platforms == ACCELERATORS else 'cpu'
    train = jax.export.export(training.step, platforms=platforms)(
        training.state, batch)
    assert train.platforms == platforms
    texts['train', key] = train.mlir_module()
    evaluate = jax.export.export(embed, platforms=platforms)(
        variables, sils, mask)
    texts['eval', key] = evaluate.mlir_module()
  return texts


@pytest.mark.parametrize('name', MODELS)
def test_train_and_eval_steps_export_without_cpu_forms(name):
  texts = _exported_texts(name)
  train, train_cpu = texts['train', 'gpu_tpu'], texts['train', 'cpu']
  evaluate, eval_cpu = texts['eval', 'gpu_tpu'], texts['eval', 'cpu']
  # The tuned 2-D convolution backward: every model has 2-D convolutions.
  assert 'optimization_barrier' not in train
  assert 'optimization_barrier' in train_cpu
  assert 'optimization_barrier' not in evaluate
  # The train step is sharded: its collectives (BatchNorm statistics, the
  # gradient mean) are in the exported program.
  assert re.search(r'all_reduce|all_gather', train)
  if name in WITH_MAX_POOL:
    assert train.count('reduce_window') > train_cpu.count('reduce_window')
    assert 'reduce_window' in evaluate
    assert 'reduce_window' not in eval_cpu
  if name == 'gaitgl':
    for gpu, cpu in ((train, train_cpu), (evaluate, eval_cpu)):
      assert _CONV3D.search(gpu)
      assert not _CONV3D.search(cpu)
  if name == 'gaitpart':
    for gpu, cpu in ((train, train_cpu), (evaluate, eval_cpu)):
      assert _GROUPED.search(gpu)
      assert not _GROUPED.search(cpu)
