"""TrackletGait: the Haar transform, sizes, the grouped temporal branch and
masking (the registry-wide checks are in tests/test_models_common.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax import models
from gait_jax.models import trackletgait
from gait_jax.models import wavelet

# arXiv 2508.02143 (TG's models instantiated under PyTorch).
BACKBONE = {'gait3d': 10_314_688, 'small': 4_798_048}
TOTAL_GAIT3D = 24_708_032
HEAD = ('FCs', 'BNNecks')


def _numpy_haar(x):
  """torch-dwt's `dwt2(x, 'haar')` on NHWC, written out per 2x2 block."""
  n, h, w, c = x.shape
  x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
  out = np.zeros((n, (h + 1) // 2, (w + 1) // 2, 4 * c), np.float64)
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      a, b = x[:, 2 * i, 2 * j], x[:, 2 * i, 2 * j + 1]
      cc, d = x[:, 2 * i + 1, 2 * j], x[:, 2 * i + 1, 2 * j + 1]
      for band, v in enumerate((a + b + cc + d, a - b + cc - d,
                                a + b - cc - d, a - b - cc + d)):
        out[:, i, j, band * c:(band + 1) * c] = v / 2
  return out


@pytest.mark.parametrize('shape', [(2, 6, 4, 3), (1, 5, 7, 2)])
def test_haar_dwt2_matches_numpy(shape):
  x = np.random.default_rng(0).standard_normal(shape)
  got = wavelet.haar_dwt2(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, _numpy_haar(x), atol=1e-6)


def test_haar_dwt2_is_orthonormal():
  x = jax.random.normal(jax.random.key(0), (3, 2, 8, 6, 5))  # [n, s, h, w, c]
  y = wavelet.haar_dwt2(x)
  assert y.shape == (3, 2, 4, 3, 20)
  np.testing.assert_allclose(jnp.sum(y * y), jnp.sum(x * x), rtol=1e-5)
  # A constant frame has all its energy in LL (the first c channels).
  y = wavelet.haar_dwt2(jnp.ones((1, 4, 4, 2)))
  np.testing.assert_allclose(y[..., :2], 2.0)
  np.testing.assert_allclose(y[..., 2:], 0.0)


def _param_shapes(variant, **config):
  model = models.get_model('trackletgait', variant=variant, **config)
  return jax.eval_shape(model.init, jax.random.key(0),
                        jnp.zeros((1, 3, 64, 44)))['params']


@pytest.mark.parametrize('variant', sorted(BACKBONE))
def test_backbone_parameter_counts(variant):
  params = _param_shapes(variant)
  backbone = sum(x.size for name, tree in params.items() if name not in HEAD
                 for x in jax.tree.leaves(tree))
  assert backbone == BACKBONE[variant]
  if variant == 'gait3d':
    assert sum(x.size for x in jax.tree.leaves(params)) == TOTAL_GAIT3D


def test_released_layer_names_and_kernel_shapes():
  params = _param_shapes('gait3d')
  assert sorted(params) == sorted(
      ['pooling1', 'FCs', 'BNNecks'] + [f'layer{i}' for i in range(1, 11)])
  assert params['pooling1']['conv_bn_relu']['0']['kernel'].shape == (
      1, 1, 1, 1, 16)
  layer2 = params['layer2']['0']
  assert layer2['pooling']['conv_bn_relu']['0']['kernel'].shape == (
      1, 1, 256, 128)  # 4 sub-bands x 64 channels -> 128, with a bias.
  assert layer2['pooling']['conv_bn_relu']['0']['bias'].shape == (128,)
  assert layer2['th']['kernel'].shape == (7, 1, 1, 32, 128)  # groups 4.
  assert sorted(layer2['downsample']) == ['1', '2']  # '0': the max pool.
  assert sorted(params['layer1']['0']['downsample']) == ['0', '1']
  assert 'downsample' not in params['layer3']['0']
  assert 'th' not in params['layer1']['0']
  assert sorted(_param_shapes('small')) == [
      'BNNecks', 'FCs', 'layer2', 'layer6', 'pooling1']


def test_grouped_conv_matches_lax_feature_groups():
  x = jax.random.normal(jax.random.key(1), (2, 9, 3, 2, 8))  # [n, s, h, w, c]
  conv = trackletgait.GroupedConv(features=12, ops='reference')
  variables = conv.init(jax.random.key(2), x)
  kernel = variables['params']['kernel']  # [7, 1, 1, 2, 12]
  want = jax.lax.conv_general_dilated(
      x, kernel, (1, 1, 1), ((3, 3), (0, 0), (0, 0)),
      dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'), feature_group_count=4)
  np.testing.assert_allclose(conv.apply(variables, x), want, atol=1e-5)


def _random_variables(model, seed):
  """Random variables with non-trivial BatchNorm statistics."""
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    kind = path[-1].key
    if kind in ('scale', 'var'):
      value = 0.8 + 0.4 * rng.random(leaf.shape)
    elif kind in ('bias', 'mean'):
      value = 0.1 * rng.standard_normal(leaf.shape)
    else:
      value = rng.standard_normal(leaf.shape) / np.sqrt(
          np.prod(leaf.shape[:-1]))
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _sils(n, s):
  rng = np.random.default_rng(4)
  return jnp.asarray(rng.random((n, s, 64, 44)) > 0.6, jnp.float32)


def test_padded_batch_equals_single_sequences_past_the_temporal_kernel():
  """Sequences longer and shorter than the 7-frame temporal kernel."""
  model = models.get_model('trackletgait', variant='tiny')
  variables = _random_variables(model, 0)
  lengths, frames = [9, 4], 9
  sils = _sils(len(lengths), frames)
  mask = jnp.arange(frames)[None, :] < jnp.array(lengths)[:, None]
  padded = jnp.where(mask[..., None, None], sils, 3.0)
  batched = jax.jit(model.apply)(variables, padded, mask)
  single = jax.jit(model.apply)
  for i, length in enumerate(lengths):
    alone = single(variables, sils[i:i + 1, :length])
    for key, value in alone.items():
      np.testing.assert_allclose(batched[key][i], value[0], atol=1e-5,
                                 rtol=0, err_msg=f'{key}, length {length}')


def test_jitted_train_forward_ignores_padded_frames():
  model = models.get_model('trackletgait', variant='tiny', num_classes=5)
  variables = _random_variables(model, 1)
  sils = _sils(4, 8)
  mask = jnp.arange(8)[None, :] < jnp.array([8, 6, 3, 1])[:, None]
  train = jax.jit(functools.partial(model.apply, train=True,
                                    mutable=['batch_stats']))
  out, state = train(variables, jnp.where(mask[..., None, None], sils, 0.0),
                     mask)
  assert out['embeddings'].shape == (4, 16, 8)
  assert out['logits'].shape == (4, 5, 16)
  for value in out.values():
    assert value.dtype == jnp.float32 and np.all(np.isfinite(value))
  # Other values in the padded frames change neither the outputs nor the
  # BatchNorm statistics (both use real frames only).
  out2, state2 = train(variables, jnp.where(mask[..., None, None], sils, 3.0),
                       mask)
  jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-5),
               (out, dict(state)), (out2, dict(state2)))


def test_bad_layout_and_input_sizes_raise():
  sils = jnp.zeros((1, 2, 64, 44))
  model = models.get_model('trackletgait', variant='tiny',
                           layout=((1, 'wavelet', 8),))
  with pytest.raises(ValueError, match="'wavelet'.*plain, temporal, haar"):
    jax.eval_shape(model.init, jax.random.key(0), sils)
  model = models.get_model('trackletgait', variant='tiny')
  with pytest.raises(ValueError, match='even height and width.*64x43'):
    jax.eval_shape(model.init, jax.random.key(0), sils[..., :43])
  with pytest.raises(ValueError, match='valid variants: .*small, tiny'):
    models.get_model('trackletgait', variant='tiniest')
