"""The ops seam: CPU-tuned forms equal the references; the choice per platform.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from gait_jax import config as config_lib
from gait_jax import models
from gait_jax.models import cpu_ops
from gait_jax.models import ops


def _assert_rel(a, b, tol=1e-5, what='', scale=None):
  """max |a - b| <= tol * scale, by default scale = max |b|."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape, (what, a.shape, b.shape)
  scale = np.max(np.abs(b)) if scale is None else scale
  err = np.max(np.abs(a - b))
  assert err <= tol * scale, f'{what}: max error {err:.3g}, scale {scale:.3g}'


def _check_value_and_grads(tuned, reference, *args):
  """Values and all argument gradients of `tuned` equal `reference`'s."""
  shape = jax.eval_shape(reference, *args).shape
  cot = jax.random.normal(jax.random.key(99), shape)

  def value_and_grads(f, *a):
    y, vjp = jax.vjp(f, *a)
    return y, vjp(cot)

  y, grads = jax.jit(functools.partial(value_and_grads, tuned))(*args)
  y_ref, grads_ref = jax.jit(functools.partial(value_and_grads,
                                               reference))(*args)
  _assert_rel(y, y_ref, what='value')
  for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
    _assert_rel(g, g_ref, what=f'gradient {i}')


def _normal(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize('kernel,strides,padding', [
    ((3, 3), (1, 1), (1, 1)),
    ((5, 5), (2, 2), (2, 2)),
    ((1, 1), (2, 2), (0, 0)),  # The tap-matmul kernel gradient.
])
def test_conv2d_tuned_equals_reference(kernel, strides, padding):
  x = _normal(0, (2, 9, 7, 6))
  k = _normal(1, kernel + (6, 5), 0.3)
  pads = tuple((p, p) for p in padding)
  _check_value_and_grads(
      lambda a, b: cpu_ops.conv2d(a, b, strides, pads),
      lambda a, b: ops.reference_conv(a, b, strides, pads), x, k)


@pytest.mark.parametrize('kernel,strides,padding', [
    ((3, 3, 3), (1, 1, 1), (1, 1, 1)),
    ((3, 1, 1), (1, 1, 1), (1, 0, 0)),
    ((3, 3, 3), (1, 2, 2), (0, 1, 1)),
])
def test_time_folded_conv3d_equals_reference(kernel, strides, padding):
  x = _normal(2, (2, 5, 9, 7, 3))
  k = _normal(3, kernel + (3, 4), 0.3)
  pads = tuple((p, p) for p in padding)
  _check_value_and_grads(
      lambda a, b: cpu_ops.time_folded_conv3d(a, b, strides, pads),
      lambda a, b: ops.reference_conv(a, b, strides, pads), x, k)


@pytest.mark.parametrize('frames', [6, 8])  # 8: two frames fill no window.
def test_strided_time_conv_equals_reference(frames):
  x = _normal(4, (2, frames, 5, 4, 3))
  k = _normal(5, (3, 1, 1, 3, 4), 0.3)
  _check_value_and_grads(
      cpu_ops.strided_time_conv,
      lambda a, b: ops.reference_conv(a, b, (3, 1, 1), ((0, 0),) * 3), x, k)


@pytest.mark.parametrize('shape', [(2, 6, 4, 3), (2, 3, 7, 5, 2)])
def test_max_pool_2x2_equals_reference_with_ties(shape):
  x = _normal(6, shape)
  x = jnp.where(x < 0.3, 0.0, jnp.round(x, 1))  # Many ties.
  _check_value_and_grads(cpu_ops.max_pool_2x2, ops.reference_max_pool_2x2, x)


@pytest.mark.parametrize('k', [1, 3, 5])
def test_part_conv1d_equals_reference(k):
  x = _normal(7, (2, 6, 4, 5))
  kernel = _normal(8, (4, k, 5, 3), 0.3)
  _check_value_and_grads(cpu_ops.part_conv1d, ops.reference_part_conv1d,
                         x, kernel)


def test_conv_picks_a_tuned_form_by_geometry():
  """3-D geometries without a tuned form run the reference everywhere."""
  x = _normal(9, (1, 7, 4, 4, 2))
  k = _normal(10, (3, 3, 3, 2, 2))
  strided = functools.partial(ops.conv, strides=(2, 1, 1), padding=(1, 1, 1))
  np.testing.assert_array_equal(
      strided(x, k, ops='cpu'),
      ops.reference_conv(x, k, (2, 1, 1), ((1, 1),) * 3))
  assert ops._tuned_conv(k.shape, (2, 1, 1), ((1, 1),) * 3, 'auto') is None


def test_ops_values_are_checked():
  x = jnp.ones((1, 4, 4, 1))
  with pytest.raises(ValueError, match="'fast'.*auto, reference, cpu"):
    ops.max_pool_2x2(x, ops='fast')
  with pytest.raises(ValueError, match="'fast'.*auto, reference, cpu"):
    models.get_model('gaitset', variant='tiny', ops='fast')
  with pytest.raises(ValueError, match="'fast'.*auto, taps, xla"):
    models.get_model('gaitset', variant='tiny', conv_kernel_grad='fast')


def test_ops_is_a_config_key_of_every_model():
  assert config_lib.base_config().model.ops == 'auto'
  for name in models.model_names():
    assert {'ops', 'conv_kernel_grad'} <= set(models.config_keys(name))


def _random_variables(model, seed):
  """Random variables of the right shapes (cheaper than `model.init`)."""
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


def _batch():
  rng = np.random.default_rng(0)
  sils = jnp.asarray(rng.random((3, 6, 64, 44)) > 0.6, jnp.float32)
  mask = jnp.arange(6)[None, :] < jnp.array([6, 4, 2])[:, None]
  return sils, mask


def _train_grads(name, ops_value):
  """Outputs and parameter gradients of a tiny model's train-mode loss."""
  model = models.get_model(name, variant='tiny', num_classes=5, ops=ops_value)
  variables = _random_variables(model, 1)
  sils, mask = _batch()

  def loss(params):
    out, _ = model.apply({**variables, 'params': params}, sils, mask,
                         train=True, mutable=['batch_stats'])
    return sum(jnp.sum(jnp.sin(v)) for v in out.values()), out

  return jax.jit(jax.grad(loss, has_aux=True))(variables['params'])


# Every model is checked; in `make test` the ones whose convolutions (2-D,
# 3-D, ResNet blocks) another model also exercises are left out as `slow`.
_OPS_FAST = ('gaitgl', 'gaitbase', 'deepgaitv2')
# Leaves whose gradient a train-mode BatchNorm cancels in exact arithmetic
# (up to its eps), so that what is computed is mostly rounding noise of a sum
# over every pixel: TrackletGait's convolution biases before a BatchNorm, and
# the stem and layer1's shortcut convolution, pointwise maps of the binary
# silhouettes (two values per channel) that a BatchNorm normalises away.
_BN_CANCELLED = {'trackletgait': re.compile(
    r'^(pooling1/|layer1/0/downsample/0/)|/conv_bn_relu/0/bias$')}


@pytest.mark.parametrize('name', [
    n if n in _OPS_FAST else pytest.param(n, marks=pytest.mark.slow)
    for n in models.model_names()])
def test_model_reference_ops_equal_auto_on_cpu(name):
  """Outputs and every parameter gradient agree at rel 1e-5 of the leaf.

  GeM's power `p` (GaitGL) is one scalar, a sum of signed contributions of
  every pooled feature that nearly cancel at random weights (0.07 against
  kernel gradients of about 20), so its error is measured against the
  model's largest gradient instead of its own value; so are the leaves of
  `_BN_CANCELLED`, at 1e-3.
  """
  grads, out = _train_grads(name, 'auto')
  grads_ref, out_ref = _train_grads(name, 'reference')
  assert set(out) == set(out_ref)
  for key in out:
    _assert_rel(out[key], out_ref[key], what=key)
  flat = traverse_util.flatten_dict(grads)
  flat_ref = traverse_util.flatten_dict(grads_ref)
  assert set(flat) == set(flat_ref)
  largest = max(float(jnp.max(jnp.abs(g))) for g in flat_ref.values())
  cancelled = _BN_CANCELLED.get(name)
  for path in flat:
    what = '/'.join(path)
    if cancelled is not None and cancelled.search(what):
      _assert_rel(flat[path], flat_ref[path], 1e-3, what, scale=largest)
      continue
    _assert_rel(flat[path], flat_ref[path], what=what,
                scale=largest if path[-1] == 'p' else None)


def _lowered_text(name, ops_value, platforms):
  """StableHLO of a tiny model's forward + parameter gradient."""
  model = models.get_model(name, variant='tiny', num_classes=5, ops=ops_value)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  sils, mask = _batch()

  def grads(variables, sils, mask):
    def loss(p):
      out, _ = model.apply({**variables, 'params': p}, sils, mask,
                           train=True, mutable=['batch_stats'])
      return sum(jnp.sum(v) for v in out.values())
    return jax.grad(loss)(variables['params'])

  exported = jax.export.export(jax.jit(grads), platforms=platforms)(
      shapes, sils, mask)
  return exported.mlir_module()


_CONV3D = re.compile(r'dim_numbers = \[b, 0, 1, 2, f\]')
_GROUPED = re.compile(r'feature_group_count = (?:[2-9]|\d\d+)')


@pytest.mark.parametrize('name', ['gaitgl', 'gaitpart'])
def test_no_cpu_forms_when_lowered_for_gpu_or_tpu(name):
  """With ops='auto', a program lowered for CUDA and TPU has none of the
  CPU-tuned forms, while the same program lowered for the CPU has them.

  Markers, in the StableHLO text:
  * `optimization_barrier`: only the tuned 2-D convolution's backward pass
    emits one (nothing here uses remat), in GaitPart's 2-D convolutions and
    in GaitGL's time-folded 3-D ones;
  * a convolution with three spatial dims (`dim_numbers = [b, 0, 1, 2, f]`):
    only the reference 3-D convolution; the tuned forms are 2-D convolutions
    and a contraction (GaitGL);
  * `reduce_window`: only the reference max pools (both models);
  * a grouped convolution (`feature_group_count` > 1): only the reference
    per-part temporal convolution (GaitPart).
  Together the two models cover every op with a tuned form.
  """
  gpu = _lowered_text(name, 'auto', ('cuda', 'tpu'))
  cpu = _lowered_text(name, 'auto', ('cpu',))
  assert 'optimization_barrier' not in gpu
  assert 'optimization_barrier' in cpu
  assert 'reduce_window' in gpu
  assert 'reduce_window' not in cpu
  if name == 'gaitgl':
    assert _CONV3D.search(gpu)
    assert not _CONV3D.search(cpu)
  else:
    assert _GROUPED.search(gpu)
    assert not _GROUPED.search(cpu)


def test_cpu_ops_run_tuned_forms_on_any_platform():
  gpu = _lowered_text('gaitpart', 'cpu', ('cuda',))
  assert 'optimization_barrier' in gpu
  assert 'reduce_window' not in gpu
