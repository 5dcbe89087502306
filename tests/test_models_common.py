"""All registered models: sizes, masking, dtypes, BatchNorm and the registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gait_jax import models
from gait_jax.models import layers

# Parameter counts of OpenGait's models (counted on OpenGait's PyTorch models).
PARAM_COUNTS = {
    ('gaitset', 'casia_b'): 2_594_592,
    ('gaitset', 'oumvlp'): 6_313_536,
    ('gaitpart', 'casia_b'): 1_204_000,
    ('gaitpart', 'oumvlp'): 4_841_248,
    ('gaitgl', 'casia_b'): 3_096_673,
    ('gaitgl', 'oumvlp'): 95_620_449,
    ('baseline', 'casia_b'): 3_779_136,
    ('baseline', 'oumvlp'): 44_112_928,
    ('gaitbase', 'casia_b'): 7_305_408,
    ('gaitbase', 'oumvlp'): 28_108_992,
    # OpenGait's DeepGaitV2 (P3D); tests/test_models_deepgaitv2.py has more.
    ('deepgaitv2', 'casia_b'): 8_339_392,
    ('deepgaitv2', 'oumvlp'): 29_142_976,
}

# (parts, embedding channels, has classifier) of the tiny variants.
TINY = {
    'gaitset': (62, 16, False),
    'gaitpart': (16, 16, False),
    'gaitgl': (64, 8, True),
    'baseline': (31, 16, True),
    'gaitbase': (16, 16, True),
    'deepgaitv2': (16, 8, True),  # P3D; hidden = channels[2].
    'swingait': (15, 8, True),  # 16 parts, the appended one dropped.
    'trackletgait': (16, 8, True),
}


def _sils(seed, n, s):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.random((n, s, 64, 44)) > 0.6, jnp.float32)


def _random_variables(model, seed):
  """Random variables of the right shapes (cheaper than `model.init`).

  Running statistics and BatchNorm affine parameters are non-trivial, so the
  checks below cannot pass by accident of an identity normalisation.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  rng = np.random.default_rng(seed)
  flat = {}
  for path, leaf in traverse_util.flatten_dict(dict(shapes)).items():
    shape, kind = leaf.shape, path[-1]
    if kind == 'p':
      value = np.full(shape, 6.5)
    elif kind in ('scale', 'var'):
      value = 0.8 + 0.4 * rng.random(shape)
    elif kind in ('bias', 'mean'):
      value = 0.1 * rng.standard_normal(shape)
    else:  # kernel [*k, in, out] or fc_bin [parts, in, out]
      fan_in = np.prod(shape[:-1]) if kind == 'kernel' else shape[1]
      value = rng.standard_normal(shape) / np.sqrt(fan_in)
    flat[path] = jnp.asarray(value, jnp.float32)
  return traverse_util.unflatten_dict(flat)


@pytest.mark.parametrize('name, variant', sorted(PARAM_COUNTS))
def test_param_counts(name, variant):
  model = models.get_model(name, variant=variant)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  count = sum(x.size for x in jax.tree.leaves(shapes['params']))
  assert count == PARAM_COUNTS[(name, variant)]


def test_registry_lists_all_models():
  assert models.model_names() == sorted(TINY)
  for name in TINY:
    assert {'casia_b', 'oumvlp', 'tiny'} <= set(models.variant_names(name))
    assert {'num_classes', 'axis_name', 'dtype', 'ops',
            'conv_kernel_grad'} <= set(models.config_keys(name))


@pytest.mark.parametrize('name', sorted(TINY))
def test_registry_errors_name_the_problem(name):
  with pytest.raises(ValueError, match=name):
    models.get_model(name + 'x')
  with pytest.raises(ValueError, match='casia_b, oumvlp, .*tiny'):
    models.get_model(name, variant='casiab')
  with pytest.raises(TypeError, match='num_clases'):
    models.get_model(name, variant='tiny', num_clases=3)


@pytest.mark.parametrize('name', sorted(TINY))
def test_tiny_train_step_shapes_dtypes_and_batch_stats(name):
  parts, channels, classifier = TINY[name]
  model = models.get_model(name, variant='tiny', num_classes=5,
                           dtype=jnp.bfloat16)
  sils = _sils(0, 4, 6)
  mask = jnp.arange(6)[None, :] < jnp.array([6, 3, 2, 1])[:, None]
  variables = _random_variables(model, 1)

  def loss(params):
    out, state = model.apply({**variables, 'params': params}, sils, mask,
                             train=True, mutable=['batch_stats'])
    return sum(jnp.sum(jnp.square(v)) for v in out.values()), (out, state)

  grads, (out, state) = jax.jit(jax.grad(loss, has_aux=True))(
      variables['params'])
  assert out['embeddings'].shape == (4, parts, channels)
  if classifier:
    assert out['logits'].shape == (4, 5, parts)
  for value in out.values():
    assert value.dtype == jnp.float32
    assert np.all(np.isfinite(value))
  # Masked frames (-inf in max pools) must not poison the gradients.
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
  assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))
  # Training updates every running statistic.
  stats = variables.get('batch_stats', {})
  assert bool(stats) == classifier
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats,
                         dict(state).get('batch_stats', {}))
  assert all(jax.tree.leaves(changed))


@pytest.mark.parametrize('name', sorted(TINY))
def test_padded_batch_equals_single_sequences(name):
  model = models.get_model(name, variant='tiny')
  lengths = [6, 3, 2, 1, 0]  # 0: a batch-padding example.
  frames = 6
  sils = _sils(2, len(lengths), frames)
  variables = _random_variables(model, 3)
  mask = jnp.arange(frames)[None, :] < jnp.array(lengths)[:, None]
  # Garbage in the padded frames must not leak into any output.
  padded = jnp.where(mask[..., None, None], sils, 3.0)
  batched, state = jax.jit(functools.partial(
      model.apply, train=False, mutable=['batch_stats']))(
          variables, padded, mask)
  # Evaluation leaves the running statistics alone.
  jax.tree.map(np.testing.assert_array_equal,
               dict(state).get('batch_stats', {}),
               variables.get('batch_stats', {}))
  for value in batched.values():
    assert np.all(np.isfinite(value))
  single = jax.jit(model.apply)
  for i, length in enumerate(lengths[:-1]):
    alone = single(variables, sils[i:i + 1, :length])
    assert set(alone) == set(batched)
    for key, value in alone.items():
      np.testing.assert_allclose(batched[key][i], value[0], atol=1e-5,
                                 rtol=0, err_msg=f'{key}, length {length}')


def test_horizontal_pyramid_golden_values():
  # OpenGait's HPP: HPP on det((2, 3, 16, 11), 0.37, 0.11).
  k = np.arange(2 * 3 * 16 * 11, dtype=np.float64)
  x = np.sin(0.37 * k + 0.11).astype(np.float32).reshape(2, 3, 16, 11)
  out = layers.horizontal_pyramid(jnp.asarray(x.transpose(0, 2, 3, 1)),
                                  (16, 8, 4, 2, 1))  # [n, p, c]
  out = np.asarray(out).transpose(0, 2, 1)  # [n, c, p]
  assert out.shape == (2, 3, 31)
  np.testing.assert_allclose(out.sum(), 175.952133, rtol=1e-6)
  np.testing.assert_allclose(
      out[0, 0, :5], [1.408682, 0.888966, 0.646375, 1.441139, 0.692930],
      atol=2e-6)
  np.testing.assert_allclose(out[1, 2, -1], 0.998404, atol=2e-6)


def _numpy_batchnorm(x, mask=None):
  """PyTorch BatchNorm semantics in NumPy: (output, new mean, new var)."""
  rows = x.astype(np.float64)
  if mask is not None:
    rows = rows[np.asarray(mask)]
  rows = rows.reshape(-1, x.shape[-1])
  mean, var = rows.mean(0), rows.var(0)
  unbiased = rows.var(0, ddof=1)
  y = (x - mean) / np.sqrt(var + 1e-5)
  return y, 0.1 * mean, 0.9 + 0.1 * unbiased


def test_batchnorm_matches_pytorch_semantics():
  x = np.asarray(jax.random.normal(jax.random.key(0), (6, 5, 3))) * 2 + 1
  bn = layers.BatchNorm()
  variables = bn.init(jax.random.key(1), x)
  variables = {'params': {'scale': jnp.ones(3), 'bias': jnp.zeros(3)},
               'batch_stats': variables['batch_stats']}
  y, state = bn.apply(variables, x, True, mutable=['batch_stats'])
  ref_y, ref_mean, ref_var = _numpy_batchnorm(x)
  np.testing.assert_allclose(y, ref_y, atol=1e-5)
  np.testing.assert_allclose(state['batch_stats']['mean'], ref_mean,
                             atol=1e-6)
  np.testing.assert_allclose(state['batch_stats']['var'], ref_var, atol=1e-6)
  # A mask restricts the statistics to the real rows.
  mask = np.array([True, True, False, True, False, True])
  y, state = bn.apply(variables, x, True, mask, mutable=['batch_stats'])
  ref_y, ref_mean, ref_var = _numpy_batchnorm(x, mask)
  np.testing.assert_allclose(y, ref_y, atol=1e-5)
  np.testing.assert_allclose(state['batch_stats']['var'], ref_var, atol=1e-6)


def test_batchnorm_axis_name_gives_global_statistics():
  devices = jax.devices()
  mesh = jax.make_mesh((len(devices),), ('data',))
  x = jax.random.normal(jax.random.key(0), (4 * len(devices), 5, 3)) + 2.0
  bn = layers.BatchNorm(axis_name='data')
  variables = layers.BatchNorm().init(jax.random.key(1), x)

  @jax.jit
  @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P('data')),
                     out_specs=(P('data'), P()))
  def sharded(v, xs):
    y, state = bn.apply(v, xs, True, mutable=['batch_stats'])
    return y, state

  y, state = sharded(
      jax.device_put(variables, NamedSharding(mesh, P())),
      jax.device_put(x, NamedSharding(mesh, P('data'))))
  ref_y, ref_state = layers.BatchNorm().apply(variables, x, True,
                                              mutable=['batch_stats'])
  np.testing.assert_allclose(y, ref_y, atol=1e-5)
  jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6),
               dict(state), dict(ref_state))
