"""The CPU-tuned 2-D convolution's backward pass equals XLA's autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax.models import cpu_ops
from gait_jax.models import ops


def _lax_conv(x, w, strides, padding):
  return jax.lax.conv_general_dilated(x, w, strides, padding,
                                      dimension_numbers=('NHWC', 'HWIO',
                                                         'NHWC'),
                                      precision=jax.lax.Precision.HIGHEST)


def _rel(a, b):
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


# (n, h, w, c, o, k, stride, pad). With kernel_grad='auto' the kernel
# gradient is one matmul for 1x1 kernels and XLA's transpose rule otherwise.
CASES = [
    (2, 9, 7, 64, 8, 3, 1, 1),    # XLA's: 3x3, wide input
    (3, 8, 6, 4, 5, 3, 2, 1),     # XLA's: 3x3, strided
    (2, 12, 10, 3, 4, 5, 1, 2),   # XLA's: 5x5
    (1, 40, 30, 2, 3, 3, 1, 1),   # XLA's: 3x3, narrow input, large map
    (2, 7, 9, 65, 6, 1, 2, 0),    # taps: 1x1 strided shortcut
    (2, 6, 5, 16, 8, 1, 1, 0),    # taps: 1x1
]


@pytest.mark.parametrize('n,h,w,c,o,k,stride,pad', CASES)
def test_conv2d_value_and_grads_match_autodiff(n, h, w, c, o, k, stride, pad):
  kx, kw, ky = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (n, h, w, c))
  kernel = jax.random.normal(kw, (k, k, c, o)) / np.sqrt(k * k * c)
  strides, padding = (stride, stride), ((pad, pad), (pad, pad))
  assert cpu_ops.taps_pay_off(kernel.shape) == (k == 1)
  y_ref = _lax_conv(x, kernel, strides, padding)
  cot = jax.random.normal(ky, y_ref.shape)

  y, vjp = jax.vjp(lambda a, b: cpu_ops.conv2d(a, b, strides, padding), x,
                   kernel)
  _, vjp_ref = jax.vjp(lambda a, b: _lax_conv(a, b, strides, padding), x,
                       kernel)
  dx, dk = jax.jit(vjp)(cot)
  dx_ref, dk_ref = vjp_ref(cot)
  assert y.shape == y_ref.shape
  assert _rel(y, y_ref) < 1e-5
  assert _rel(dx, dx_ref) < 1e-5
  assert _rel(dk, dk_ref) < 1e-5


def test_kernel_grad_by_taps_matches_autodiff_directly():
  """The tap path itself, for 3x3 kernels that 'auto' gives to XLA."""
  kx, ky = jax.random.split(jax.random.PRNGKey(1))
  x = jax.random.normal(kx, (2, 11, 8, 3))
  for stride, pad in ((1, 1), (2, 1), (2, 0)):
    strides, padding = (stride, stride), ((pad, pad), (pad, pad))
    kernel = jnp.zeros((3, 3, 3, 4))
    y, vjp = jax.vjp(lambda k: _lax_conv(x, k, strides, padding), kernel)
    dy = jax.random.normal(ky, y.shape)
    got = cpu_ops.kernel_grad_by_taps(x, dy, kernel.shape, strides, padding)
    assert _rel(got, vjp(dy)[0]) < 1e-5


def test_conv2d_in_bfloat16_keeps_dtype_and_is_close():
  x = jax.random.normal(jax.random.PRNGKey(5), (2, 8, 6, 64))
  kernel = jax.random.normal(jax.random.PRNGKey(6), (1, 1, 64, 8)) / 8.0
  padding = ((0, 0), (0, 0))
  f = lambda a, b: jnp.sum(cpu_ops.conv2d(a, b, (1, 1), padding) ** 2)
  dk = jax.grad(f, argnums=1)(x.astype(jnp.bfloat16),
                              kernel.astype(jnp.bfloat16))
  dk_ref = jax.grad(f, argnums=1)(x, kernel)
  assert dk.dtype == jnp.bfloat16
  assert _rel(dk.astype(jnp.float32), dk_ref) < 3e-2


@pytest.mark.parametrize('mode', ['taps', 'xla'])
def test_kernel_grad_modes_agree(mode):
  x = jax.random.normal(jax.random.PRNGKey(7), (2, 40, 30, 2))
  kernel = jax.random.normal(jax.random.PRNGKey(8), (3, 3, 2, 3))
  padding = ((1, 1), (1, 1))
  f = lambda k: jnp.sum(jnp.sin(ops.conv(x, k, (1, 1), padding, ops='cpu',
                                         conv_kernel_grad=mode)))
  g = lambda k: jnp.sum(jnp.sin(_lax_conv(x, k, (1, 1), padding)))
  assert _rel(jax.grad(f)(kernel), jax.grad(g)(kernel)) < 1e-5


def test_kernel_grad_mode_is_a_static_argument():
  """Each mode traces its own program: the taps path adds a matmul."""
  x = jnp.ones((1, 6, 5, 2))
  kernel = jnp.ones((3, 3, 2, 3))

  def hlo(mode):
    f = lambda k: jnp.sum(cpu_ops.conv2d(x, k, (1, 1), ((1, 1),) * 2, mode))
    return jax.jit(jax.grad(f)).lower(kernel).as_text()

  assert 'dot_general' in hlo('taps')
  assert 'dot_general' not in hlo('xla')
  assert 'dot_general' not in hlo('auto')  # 3x3: XLA's gradient.


def test_unknown_kernel_grad_mode_is_named():
  x = jnp.ones((1, 4, 4, 1))
  with pytest.raises(ValueError, match="'fast'.*auto, taps, xla"):
    ops.conv(x, jnp.ones((3, 3, 1, 1)), (1, 1), (1, 1),
             conv_kernel_grad='fast')
  with pytest.raises(ValueError, match="'fast'.*auto, taps, xla"):
    jax.grad(lambda k: jnp.sum(cpu_ops.conv2d(x, k, (1, 1), ((1, 1),) * 2,
                                              'fast')))(jnp.ones((3, 3, 1, 1)))


@pytest.mark.parametrize('ops_value', ['reference', 'cpu'])
@pytest.mark.parametrize('shape', [(2, 6, 4, 3), (3, 2, 7, 5, 2)])
def test_max_pool_2x2_matches_pytorch_with_ties(shape, ops_value):
  """Value and gradient equal PyTorch's max_pool2d, ties included (the
  gradient goes to the first maximum of each window), in both forms."""
  torch = pytest.importorskip('torch')
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(9), shape))
  x = np.where(x < 0.3, 0.0, np.round(x, 1)).astype(np.float32)  # many ties
  y, vjp = jax.vjp(lambda a: ops.max_pool_2x2(a, ops=ops_value),
                   jnp.asarray(x))
  cot = np.asarray(jax.random.normal(jax.random.PRNGKey(10), y.shape))
  (dx,) = vjp(jnp.asarray(cot))

  lead = shape[:-3]
  xt = torch.tensor(x.reshape((-1,) + shape[-3:])).permute(0, 3, 1, 2)
  xt.requires_grad_(True)
  yt = torch.nn.functional.max_pool2d(xt, 2, 2)
  yt.backward(torch.tensor(cot.reshape((-1,) + y.shape[-3:])).permute(
      0, 3, 1, 2))
  y_ref = yt.detach().permute(0, 2, 3, 1).numpy().reshape(y.shape)
  dx_ref = xt.grad.permute(0, 2, 3, 1).numpy().reshape(lead + shape[-3:])
  np.testing.assert_array_equal(np.asarray(y), y_ref)
  np.testing.assert_array_equal(np.asarray(dx), dx_ref)
