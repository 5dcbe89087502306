"""train.init_from: a DeepGaitV2 checkpoint's stem into a fresh SwinGait.

As in OpenGait (Gait3D: DeepGaitV2 FCs [16, 512, 256] and BNNecks
[16, 256, 3000] have SwinGait's shapes), the heads load too; so do the tiny
variants' heads here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from gait_jax import checkpoint as ckpt_lib
from gait_jax import models
from gait_jax import warm_start
from gait_jax.train_step import TrainState

SHARED = ('layer0', 'layer1', 'layer2', 'FCs', 'BNNecks')


def _state(name, seed, **config):
  model = models.get_model(name, variant='tiny', **config)
  variables = jax.jit(model.init)(jax.random.key(seed),
                                  jnp.zeros((1, 3, 64, 44)))
  tx = optax.adamw(1e-3)
  return TrainState(step=jnp.asarray(7, jnp.int32),
                    params=variables['params'],
                    batch_stats=variables['batch_stats'],
                    opt_state=tx.init(variables['params']))


def _flat(tree):
  return {'/'.join(k): np.asarray(v)
          for k, v in traverse_util.flatten_dict(dict(tree)).items()}


@pytest.fixture(scope='module')
def deepgaitv2_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('dgv2'))
  source = _state('deepgaitv2', 1)
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    checkpointer.save(7, source, {'model': {'name': 'deepgaitv2'}},
                      force=True)
  return workdir, source


def test_stem_and_heads_load_and_the_rest_keeps_its_init(
    deepgaitv2_workdir):
  workdir, source = deepgaitv2_workdir
  fresh = _state('swingait', 2)
  state, report = warm_start.load_matching(fresh, workdir)
  for coll in ('params', 'batch_stats'):
    src, new, init = (_flat(getattr(s, coll)) for s in (source, state, fresh))
    for key, value in new.items():
      name = f'{coll}/{key}'
      if key.split('/')[0] in SHARED:
        np.testing.assert_array_equal(value, src[key], err_msg=key)
        assert name in report.loaded
      else:
        np.testing.assert_array_equal(value, init[key], err_msg=key)
  assert all(k.split('/')[1] in SHARED for k in report.loaded)
  assert not report.skipped
  assert any(k.startswith('params/transformer/') for k in report.missing)
  assert not [k for k in report.missing if k.split('/')[1] in SHARED]
  assert any(k.startswith('params/layer3/') for k in report.unused)
  # The optimizer state and the step stay fresh.
  assert int(state.step) == int(fresh.step)
  jax.tree.map(np.testing.assert_array_equal, state.opt_state,
               fresh.opt_state)


def test_strict_names_the_problems_and_bad_paths_raise(deepgaitv2_workdir,
                                                       tmp_path):
  workdir, _ = deepgaitv2_workdir
  fresh = _state('swingait', 2, channels=(4, 6))  # layer2 no longer fits.
  _, report = warm_start.load_matching(fresh, workdir)
  assert any(k.startswith('params/layer2/') for k in report.skipped)
  with pytest.raises(ValueError, match=r'skipped: .*params/layer2/.*missing'):
    warm_start.load_matching(fresh, workdir, strict=True)
  with pytest.raises(FileNotFoundError, match='holds no checkpoint'):
    warm_start.load_matching(fresh, str(tmp_path))


# The trainer's wiring of train.init_from: two short trainings.
@pytest.mark.slow
def test_train_starts_from_another_runs_workdir(tiny_dataset, tmp_path,
                                                capsys):
  from gait_jax import train  # pylint: disable=g-import-not-at-top
  from train_utils import tiny_config  # pylint: disable=g-import-not-at-top
  source = train.train(tiny_config(tiny_dataset, model='deepgaitv2',
                                   steps=2), str(tmp_path / 'dgv2'))
  config = tiny_config(tiny_dataset, model='swingait', steps=1)
  config.unlock()
  config.train.init_from = str(tmp_path / 'dgv2')
  config.train.eval_at_end = False
  config.optim.lr = 0.0  # The step keeps the parameters as loaded.
  config.lock()
  capsys.readouterr()
  state = train.train(config, str(tmp_path / 'swin'))
  assert 'Initialised from' in capsys.readouterr().out
  assert int(state.step) == 1
  got, want = _flat(jax.device_get(state.params)), _flat(
      jax.device_get(source.params))
  for key, value in got.items():
    if key.split('/')[0] in SHARED:
      np.testing.assert_array_equal(value, want[key], err_msg=key)
