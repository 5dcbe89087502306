"""Bias-free convolutions with the layouts and parameters of `nn.Conv`.

`Conv2d` is a drop-in for a bias-free `nn.Conv` over NHWC frames (same
`kernel` parameter `[kh, kw, in, out]`, same initialiser) whose backward pass
computes the kernel gradient as one matmul per kernel tap on CPUs:
`dW[i, j] = x_shift(i, j)^T @ dy` over all output pixels. With XLA's own
CPU convolutions (the `gait_jax.xla_cpu` default) this pays off for 1×1
kernels only, whose gradient is then a single matmul (1.3–3.1× faster than
XLA's, measured at GaitBase's shortcut shapes); with jaxlib's YNNPACK
convolutions it also paid off for wide inputs and small maps. On other
platforms the backward pass is XLA's own. Both give the same gradient up to
float32 summation order.

`TimeFoldedConv3d` computes a 3-D convolution with temporal stride 1 as one
2-D convolution over frames whose channels hold the temporal taps.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

# OpenGait initialises every convolution with Xavier-uniform; Flax's fan rule
# for a `[*k, in, out]` kernel equals PyTorch's for `[out, in, *k]`.
conv_init = nn.initializers.xavier_uniform()

_DIMS = ('NHWC', 'HWIO', 'NHWC')

# How `conv2d` takes its kernel gradient on CPUs: 'auto' (tap matmuls where
# they measured faster, see `_taps_pay_off`), 'taps' (always) or 'xla'
# (never). Read when a function is traced; other platforms always use XLA's.
KERNEL_GRAD_MODES = ('auto', 'taps', 'xla')
kernel_grad_mode = 'auto'


def _xla_conv(x: Array, kernel: Array, strides: tuple[int, int],
              padding: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=_DIMS)


def _kernel_grad_by_taps(x: Array, dy: Array, kernel_shape: Sequence[int],
                         strides: tuple[int, int],
                         padding: tuple[tuple[int, int], tuple[int, int]]
                         ) -> Array:
  """Kernel gradient of a 2-D convolution as one matmul per kernel tap.

  Args:
    x: `[n, h, w, c]` convolution input.
    dy: `[n, ho, wo, o]` output cotangent.
    kernel_shape: `(kh, kw, c, o)`.
    strides: `(sh, sw)`.
    padding: `((top, bottom), (left, right))`.

  Returns:
    `[kh, kw, c, o]` gradient, in float32 accumulation of `x.dtype` inputs.
  """
  kh, kw, c, o = kernel_shape
  sh, sw = strides
  n, ho, wo, _ = dy.shape
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  dy2 = dy.reshape(n * ho * wo, o)  # [m, o]
  taps = []
  for i in range(kh):
    for j in range(kw):
      xs = xp[:, i:i + sh * (ho - 1) + 1:sh,
              j:j + sw * (wo - 1) + 1:sw, :]  # [n, ho, wo, c]
      taps.append(jnp.dot(xs.reshape(n * ho * wo, c).T, dy2,
                          preferred_element_type=jnp.float32))  # [c, o]
  return jnp.stack(taps).reshape(kh, kw, c, o).astype(x.dtype)


def _taps_pay_off(kernel_shape: Sequence[int]) -> bool:
  """Whether tap matmuls beat XLA:CPU's kernel gradient (measured).

  With XLA's own CPU convolutions they do for 1×1 kernels (one matmul, no
  shifted copies); for 3×3 and 5×5 kernels XLA's gradient was 1.1–3.2×
  faster at every shape of the five models (benchmarks/train_bench_layers.py).
  """
  return kernel_shape[0] * kernel_shape[1] == 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: Array, kernel: Array, strides: tuple[int, int],
           padding: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  """NHWC × HWIO → NHWC convolution; its kernel gradient is CPU-tuned.

  Args:
    x: `[n, h, w, c]`.
    kernel: `[kh, kw, c, o]`, same dtype as `x`.
    strides: `(sh, sw)`.
    padding: `((top, bottom), (left, right))` zero padding.

  Returns:
    `[n, ho, wo, o]`.
  """
  return _xla_conv(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
  return _xla_conv(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, dy):
  x, kernel = residuals
  if kernel_grad_mode not in KERNEL_GRAD_MODES:
    raise ValueError(f'conv.kernel_grad_mode={kernel_grad_mode!r}; valid: '
                     f'{", ".join(KERNEL_GRAD_MODES)}.')
  use_taps = (kernel_grad_mode == 'taps' or (
      kernel_grad_mode == 'auto'
      and _taps_pay_off(kernel.shape)))

  def xla_grads(x_, dy_):  # XLA's gradients of both operands.
    return jax.vjp(lambda a, k: _xla_conv(a, k, strides, padding),
                   x_, kernel)[1](dy_)

  def cpu_grads(x_, dy_):
    # The barrier makes the kernel gradient read the stored input. Without
    # it XLA:CPU recomputes the input's producers (BatchNorm, ReLU,
    # residual sums) inside the transpose that feeds the gradient
    # convolution, in transposed order: 4x slower than a plain transpose.
    x_ = jax.lax.optimization_barrier(x_)
    if not use_taps:
      return xla_grads(x_, dy_)
    (dx,) = jax.vjp(lambda a: _xla_conv(a, kernel, strides, padding),
                    x_)[1](dy_)
    return dx, _kernel_grad_by_taps(x_, dy_, kernel.shape, strides, padding)

  return jax.lax.platform_dependent(x, dy, cpu=cpu_grads, default=xla_grads)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv2d(nn.Module):
  """Bias-free 2-D convolution over NHWC frames (see `conv2d`).

  Attributes:
    features: output channels.
    kernel_size: `(kh, kw)`.
    strides: `(sh, sw)`.
    padding: `(ph, pw)` symmetric zero padding.
    dtype: compute dtype; the kernel parameter is float32.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Sequence[int] = (0, 0)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, h, w, c]` to `[n, h', w', features]`."""
    kh, kw = self.kernel_size
    kernel = self.param('kernel', conv_init,
                        (kh, kw, x.shape[-1], self.features), jnp.float32)
    ph, pw = self.padding
    return conv2d(x.astype(self.dtype), kernel.astype(self.dtype),
                  tuple(self.strides), ((ph, ph), (pw, pw)))


class TimeFoldedConv3d(nn.Module):
  """Bias-free 3-D convolution with temporal stride 1, as one 2-D convolution.

  The `kt` temporal taps of the zero-padded input are stacked along the
  channels, `[n, t, h, w, kt * c]`, and a 2-D convolution with the kernel
  reshaped to `[kh, kw, kt * c, out]` runs over the `n * t` frames. The
  arithmetic is the 3-D convolution's (exact up to float summation order),
  and XLA:CPU's 2-D kernels are several times faster than its generic 3-D
  one, in both directions. The parameter is the `[kt, kh, kw, in, out]`
  kernel that `nn.Conv` would hold, so checkpoints are interchangeable.

  Attributes:
    features: output channels.
    kernel_size: `(kt, kh, kw)`.
    strides: spatial `(sh, sw)` strides.
    padding: symmetric `(pt, ph, pw)` zero padding.
    dtype: compute dtype.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Sequence[int] = (0, 0, 0)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, t, h, w, c]` to `[n, t + 2 pt - kt + 1, h', w', features]`."""
    kt, kh, kw = self.kernel_size
    pt, ph, pw = self.padding
    c = x.shape[-1]
    kernel = self.param('kernel', conv_init, (kt, kh, kw, c, self.features),
                        jnp.float32)
    x = x.astype(self.dtype)
    n = x.shape[0]
    xp = jnp.pad(x, ((0, 0), (pt, pt), (0, 0), (0, 0), (0, 0)))
    t = xp.shape[1] - kt + 1
    taps = jnp.concatenate([xp[:, i:i + t] for i in range(kt)],
                           axis=-1)  # [n, t, h, w, kt * c]
    k2 = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(
        kh, kw, kt * c, self.features).astype(self.dtype)
    y = conv2d(taps.reshape((n * t,) + taps.shape[2:]), k2,
               tuple(self.strides),
               ((ph, ph), (pw, pw)))  # [n * t, h', w', out]
    return y.reshape((n, t) + y.shape[1:])


@jax.custom_vjp
def _max_pool_windows(win: Array) -> Array:
  """Max over axis -2 of `[..., 4, c]` windows; gradient to the first max."""
  return jnp.max(win, axis=-2)


def _max_pool_windows_fwd(win):
  idx = jnp.argmax(win, axis=-2)  # [..., c], the first maximum.
  return jnp.max(win, axis=-2), (idx, win.shape[-2])


def _max_pool_windows_bwd(residuals, g):
  idx, k = residuals
  onehot = idx[..., None, :] == jnp.arange(k)[:, None]  # [..., k, c]
  return (jnp.where(onehot, g[..., None, :], jnp.zeros((), g.dtype)),)


_max_pool_windows.defvjp(_max_pool_windows_fwd, _max_pool_windows_bwd)


def max_pool_2x2(x: Array) -> Array:
  """2×2 max pooling with stride 2 over `[..., h, w, c]` (VALID, as PyTorch).

  A reshape into 2×2 windows and a max, whose gradient goes to the first
  maximum of each window in row-major order, as PyTorch's `max_pool2d`. On
  XLA:CPU the gradient of `nn.max_pool` is a select-and-scatter that carries
  index arrays as large as the input; this form is about 2× faster.

  Args:
    x: `[..., h, w, c]`; an odd last row or column is dropped.

  Returns:
    `[..., h // 2, w // 2, c]`.
  """
  *lead, h, w, c = x.shape
  ho, wo = h // 2, w // 2
  x = x[..., :2 * ho, :2 * wo, :]
  win = x.reshape(*lead, ho, 2, wo, 2, c)
  nl = len(lead)
  win = jnp.moveaxis(win, nl + 1, nl + 2)  # [..., ho, wo, 2, 2, c]
  win = win.reshape(*lead, ho, wo, 4, c)
  return _max_pool_windows(win)
