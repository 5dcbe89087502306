"""`model.remat`: same parameters and train step, smaller compiled step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax import checkpoint_meta
from gait_jax import config as config_lib
from gait_jax import experiment
from gait_jax import models
from gait_jax.models import remat as remat_lib

# Models whose backbone is residual (BatchNorm in every block): remat must
# shrink their compiled step's temporaries.
RESNET_STYLE = ('gaitbase', 'deepgaitv2', 'trackletgait')
# Models with gradient leaves that following train-mode BatchNorms (nearly)
# cancel at these all-positive weights, so that their own scale is that of
# rounding noise (TrackletGait: block BatchNorm biases at 6e-4 against a
# largest gradient of 0.19; SwinGait: BNNeck biases at 2e-3, off by 10
# float32 ulps after the recomputed attention and LayerNorms): errors are
# measured against the largest one.
LARGEST_SCALE = ('trackletgait', 'swingait')


def _batch(n=4, s=8):
  rng = np.random.default_rng(0)
  sils = jnp.asarray(rng.random((n, s, 64, 44)) > 0.6, jnp.float32)
  lengths = np.array([s, s - 3, s, 3] * n)[:n]
  mask = jnp.asarray(np.arange(s)[None, :] < lengths[:, None])
  return sils, mask


def _variables(model, sils):
  """Random float32 variables of `model` (cheaper than compiling its init)."""
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), sils[:2, :3], train=False))
  rng = np.random.default_rng(0)
  return jax.tree.map(
      lambda x: jnp.asarray(0.5 + rng.random(x.shape), x.dtype), shapes)


def _step_fn(model, sils, mask, parts):
  """A train step (loss, gradients, batch stats) of `model` on one batch."""
  weight = jax.random.normal(jax.random.key(1), parts)

  def step(params, stats):
    def loss_fn(p):
      out, mutated = model.apply({'params': p, 'batch_stats': stats}, sils,
                                 mask=mask, train=True,
                                 mutable=['batch_stats'])
      loss = jnp.sum(jnp.tanh(out['embeddings']) * weight)
      if 'logits' in out:
        loss += jnp.mean(jax.nn.logsumexp(out['logits'], axis=1))
      return loss, mutated.get('batch_stats', {})
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    return loss, grads, new_stats

  return step


@functools.lru_cache(maxsize=None)
def _compiled_step(name, remat):
  """Variables, compiled step and its results for a tiny model (cached)."""
  sils, mask = _batch()
  model = models.get_model(name, variant='tiny', num_classes=8, remat=remat)
  variables = _variables(model, sils)
  parts = jax.eval_shape(lambda v: model.apply(v, sils[:1, :3]),
                         variables)['embeddings'].shape[1:]
  args = (variables['params'], variables.get('batch_stats', {}))
  compiled = jax.jit(_step_fn(model, sils, mask, parts)).lower(
      *args).compile(remat_lib.compiler_options(remat, 'cpu'))
  return variables, compiled, compiled(*args)


def _max_rel(a, b, whole_tree=False):
  """Largest |a - b| / max|a| over the leaves of two trees (max|a| over the
  whole tree `a` if `whole_tree`)."""
  top = max([float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(a)],
            default=0.0)
  errs = jax.tree.map(
      lambda x, y: float(jnp.max(jnp.abs(x - y)) / max(
          top if whole_tree else float(jnp.max(jnp.abs(x))), 1e-30)), a, b)
  return max(jax.tree.leaves(errs), default=0.0)


# The four slowest models' remat checks (20-50 s each) run only with the slow
# tests (`make test-all`); the other models' stay in `make test`.
_REMAT_SLOW = ('gaitpart', 'gaitbase', 'trackletgait', 'swingait')


@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.slow) if n in _REMAT_SLOW else n
    for n in models.model_names()])
def test_remat_keeps_params_and_step_and_saves_memory(name):
  runs = {r: _compiled_step(name, r) for r in ('none', 'blocks')}
  (v0, c0, (loss0, grads0, stats0)) = runs['none']
  (v1, c1, (loss1, grads1, stats1)) = runs['blocks']
  # Same variable tree: names, shapes and dtypes.
  shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
  assert shapes(v0) == shapes(v1)
  assert abs(float(loss1 - loss0)) <= 1e-6 * abs(float(loss0))
  assert _max_rel(grads0, grads1, name in LARGEST_SCALE) <= 1e-6
  assert _max_rel(stats0, stats1) <= 1e-6
  temp0 = c0.memory_analysis().temp_size_in_bytes
  temp1 = c1.memory_analysis().temp_size_in_bytes
  if name in RESNET_STYLE:
    assert temp1 < 0.8 * temp0, (temp0, temp1)
  else:
    assert temp1 <= temp0, (temp0, temp1)


def test_dots_saveable_policy_matches():
  _, c0, (loss0, grads0, stats0) = _compiled_step('gaitbase', 'none')
  _, c1, (loss1, grads1, stats1) = _compiled_step('gaitbase', 'dots_saveable')
  assert abs(float(loss1 - loss0)) <= 1e-6 * abs(float(loss0))
  assert _max_rel(grads0, grads1) <= 1e-6
  assert _max_rel(stats0, stats1) <= 1e-6
  assert (c1.memory_analysis().temp_size_in_bytes <
          c0.memory_analysis().temp_size_in_bytes)


def test_bfloat16_remat_keeps_params_stats_and_loss_float32():
  sils, mask = _batch(n=2, s=4)
  model = models.get_model('gaitbase', variant='tiny', num_classes=8,
                           remat='blocks', dtype=jnp.bfloat16)
  variables = _variables(model, sils)
  out = jax.eval_shape(lambda v: model.apply(v, sils, mask=mask), variables)
  step = _step_fn(model, sils, mask, out['embeddings'].shape[1:])
  loss, grads, stats = jax.eval_shape(step, variables['params'],
                                      variables['batch_stats'])
  f32 = {jnp.dtype('float32')}
  for tree in (variables, grads, stats, out):
    assert {x.dtype for x in jax.tree.leaves(tree)} == f32
  assert loss.dtype == jnp.float32
  # The backbone does compute in bfloat16.
  hlo = jax.jit(step).lower(variables['params'],
                            variables['batch_stats']).as_text()
  assert 'bf16' in hlo


def test_remat_is_validated_configured_and_not_in_checkpoint_meta():
  with pytest.raises(ValueError, match='none, blocks, dots_saveable'):
    models.get_model('gaitset', variant='tiny', remat='everything')
  config = config_lib.base_config()
  assert config.model.remat == 'none'
  for name in models.model_names():
    assert 'remat' in models.config_keys(name)
  config.model.update(name='gaitbase', variant='tiny', remat='blocks')
  assert experiment.build_model(config, 8).remat == 'blocks'
  meta = checkpoint_meta.checkpoint_meta(config)
  assert 'remat' not in meta['model']
  stored = dict(meta, model=dict(meta['model'], remat='none'))
  assert checkpoint_meta.check_meta(stored, meta) == ([], [])
  assert remat_lib.compiler_options('blocks', 'cpu')
  assert remat_lib.compiler_options('none', 'cpu') is None
  assert remat_lib.compiler_options('blocks', 'gpu') is None


@pytest.mark.parametrize('name, variant', [
    ('gaitgl', 'oumvlp'), ('gaitpart', 'oumvlp'), ('deepgaitv2', 'grew')])
def test_remat_keeps_the_full_variants_parameter_trees(name, variant):
  """Structures the tiny variants lack: GLStage, two Plain pools, 4-block
  stages."""
  sils = jnp.zeros((1, 3, 64, 44))
  trees = [jax.tree.map(lambda x: (x.shape, x.dtype), jax.eval_shape(
      models.get_model(name, variant=variant, remat=remat).init,
      jax.random.key(0), sils)) for remat in remat_lib.REMAT]
  assert trees[0] == trees[1] == trees[2]
