"""CPU-tuned forms of the ops in `gait_jax.models.ops`.

Each function computes the same arithmetic as its reference in `ops` (equal
up to float32 summation order; gradients of the max pool go to the same
element) in a form that measured faster on XLA:CPU. Nothing here looks at the
platform: `ops` decides where these forms run.

* `conv2d`: XLA's forward convolution with a custom backward pass that reads
  the stored input behind an optimization barrier and, for 1×1 kernels
  (`kernel_grad='auto'`), takes the kernel gradient as one matmul.
* `time_folded_conv3d`: a 3-D convolution with temporal stride 1 as one 2-D
  convolution over frames whose channels hold the temporal taps.
* `strided_time_conv`: a 3-D convolution whose kernel equals its stride,
  `(k, 1, 1)`, as a reshape and one contraction.
* `max_pool_2x2`: 2×2 windows by reshape, a max, and a gradient to the first
  maximum of each window.
* `part_conv1d`: per-part temporal convolutions as stacked shifted frames and
  one einsum.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
Padding = tuple[tuple[int, int], ...]

# How the tuned `conv2d` takes its kernel gradient: 'auto' (tap matmuls where
# they measured faster, see `taps_pay_off`), 'taps' (always) or 'xla' (XLA's
# transpose rule; the input still passes the optimization barrier).
KERNEL_GRADS = ('auto', 'taps', 'xla')

_DIMS_2D = ('NHWC', 'HWIO', 'NHWC')


def _xla_conv2d(x: Array, kernel: Array, strides: tuple[int, int],
                padding: Padding) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=_DIMS_2D)


def kernel_grad_by_taps(x: Array, dy: Array, kernel_shape: Sequence[int],
                        strides: tuple[int, int], padding: Padding) -> Array:
  """Kernel gradient of a 2-D convolution as one matmul per kernel tap.

  `dW[i, j] = x_shift(i, j)^T @ dy` over all output pixels.

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


def taps_pay_off(kernel_shape: Sequence[int]) -> bool:
  """Whether tap matmuls beat XLA:CPU's kernel gradient (measured).

  With XLA's own CPU convolutions (the `gait_jax.xla_cpu` default) they do
  for 1×1 kernels only, whose gradient is then a single matmul without
  shifted copies (1.3–3.1× faster at GaitBase's shortcut shapes); for 3×3
  and 5×5 kernels XLA's gradient was 1.1–3.2× faster at every shape of the
  five models (benchmarks/train_bench_layers.py).

  Args:
    kernel_shape: `(kh, kw, c, o)`.

  Returns:
    True for 1×1 kernels.
  """
  return kernel_shape[0] * kernel_shape[1] == 1


def check_kernel_grad(kernel_grad: str) -> str:
  """Returns `kernel_grad` if valid (in `KERNEL_GRADS`); else ValueError."""
  if kernel_grad not in KERNEL_GRADS:
    raise ValueError(f'Unknown conv_kernel_grad {kernel_grad!r}; valid: '
                     f'{", ".join(KERNEL_GRADS)}.')
  return kernel_grad


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x: Array, kernel: Array, strides: tuple[int, int],
           padding: Padding, kernel_grad: str = 'auto') -> Array:
  """NHWC × HWIO → NHWC convolution with a CPU-tuned backward pass.

  Args:
    x: `[n, h, w, c]`.
    kernel: `[kh, kw, c, o]`, same dtype as `x`.
    strides: `(sh, sw)`.
    padding: `((top, bottom), (left, right))` zero padding.
    kernel_grad: one of `KERNEL_GRADS`.

  Returns:
    `[n, ho, wo, o]`.
  """
  check_kernel_grad(kernel_grad)
  return _xla_conv2d(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding, kernel_grad):
  check_kernel_grad(kernel_grad)
  return _xla_conv2d(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, kernel_grad, residuals, dy):
  x, kernel = residuals
  # The barrier makes the kernel gradient read the stored input. Without it
  # XLA:CPU recomputes the input's producers (BatchNorm, ReLU, residual sums)
  # inside the transpose that feeds the gradient convolution, in transposed
  # order: 4x slower than a plain transpose.
  x = jax.lax.optimization_barrier(x)
  use_taps = kernel_grad == 'taps' or (kernel_grad == 'auto'
                                       and taps_pay_off(kernel.shape))
  if not use_taps:
    return jax.vjp(lambda a, k: _xla_conv2d(a, k, strides, padding),
                   x, kernel)[1](dy)
  (dx,) = jax.vjp(lambda a: _xla_conv2d(a, kernel, strides, padding),
                  x)[1](dy)
  return dx, kernel_grad_by_taps(x, dy, kernel.shape, strides, padding)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def time_folded_conv3d(x: Array, kernel: Array, strides: Sequence[int],
                       padding: Padding, kernel_grad: str = 'auto') -> Array:
  """3-D convolution with temporal stride 1 as one 2-D convolution.

  The `kt` temporal taps of the zero-padded input are stacked along the
  channels, `[n, t, h, w, kt * c]`, and `conv2d` with the kernel reshaped to
  `[kh, kw, kt * c, o]` runs over the `n * t` frames. XLA:CPU's 2-D kernels
  are several times faster than its generic 3-D one, in both directions.

  Args:
    x: `[n, s, h, w, c]`.
    kernel: `[kt, kh, kw, c, o]`, same dtype as `x`.
    strides: `(1, sh, sw)`.
    padding: `((pt, pt'), (ph, ph'), (pw, pw'))` zero padding.
    kernel_grad: passed to `conv2d`.

  Returns:
    `[n, s + pt + pt' - kt + 1, ho, wo, o]`.
  """
  if strides[0] != 1:
    raise ValueError(f'Temporal stride must be 1, got {tuple(strides)}.')
  kt, kh, kw, c, o = kernel.shape
  n = x.shape[0]
  xp = jnp.pad(x, ((0, 0), padding[0], (0, 0), (0, 0), (0, 0)))
  t = xp.shape[1] - kt + 1
  taps = jnp.concatenate([xp[:, i:i + t] for i in range(kt)],
                         axis=-1)  # [n, t, h, w, kt * c]
  k2 = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(
      kh, kw, kt * c, o)  # [kh, kw, kt * c, o]
  y = conv2d(taps.reshape((n * t,) + taps.shape[2:]), k2,
             tuple(strides[1:]), tuple(padding[1:]),
             kernel_grad)  # [n * t, ho, wo, o]
  return y.reshape((n, t) + y.shape[1:])


def strided_time_conv(x: Array, kernel: Array) -> Array:
  """3-D convolution with kernel = stride = `(k, 1, 1)`, unpadded.

  The windows do not overlap, so the convolution is a reshape of the frame
  axis into `[t, k]` and a contraction over `(k, c)`; trailing frames that
  fill no window are dropped, as by the convolution.

  Args:
    x: `[n, s, h, w, c]`.
    kernel: `[k, 1, 1, c, o]`, same dtype as `x`.

  Returns:
    `[n, s // k, h, w, o]`.
  """
  k = kernel.shape[0]
  n, s = x.shape[:2]
  t = s // k
  x = x[:, :t * k].reshape(n, t, k, *x.shape[2:])  # [n, t, k, h, w, c]
  return jnp.einsum('ntkhwc,kco->nthwo', x,
                    kernel[:, 0, 0])  # [n, t, h, w, o]


@jax.custom_vjp
def _max_windows(win: Array) -> Array:
  """Max over axis -2 of `[..., 4, c]` windows; gradient to the first max."""
  return jnp.max(win, axis=-2)


def _max_windows_fwd(win):
  idx = jnp.argmax(win, axis=-2)  # [..., c], the first maximum.
  return jnp.max(win, axis=-2), (idx, win.shape[-2])


def _max_windows_bwd(residuals, g):
  idx, k = residuals
  onehot = idx[..., None, :] == jnp.arange(k)[:, None]  # [..., k, c]
  return (jnp.where(onehot, g[..., None, :], jnp.zeros((), g.dtype)),)


_max_windows.defvjp(_max_windows_fwd, _max_windows_bwd)


def max_pool_2x2(x: Array) -> Array:
  """2×2 max pooling with stride 2 over `[..., h, w, c]` (VALID).

  A reshape into 2×2 windows and a max whose gradient goes to the first
  maximum of each window in row-major order. On XLA:CPU the gradient of a
  `reduce_window` max is a select-and-scatter that carries index arrays as
  large as the input; this form is about 2× faster.

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
  return _max_windows(win)


def part_conv1d(x: Array, kernel: Array) -> Array:
  """Per-part temporal convolution with zero padding `k // 2`.

  The `k` temporal neighbours of every frame are stacked, `[n, s, k, p, c]`,
  and contracted with the kernel in one einsum. Forward and backward together
  this was 1.2–1.8× faster than XLA:CPU's grouped convolution at GaitPart's
  shapes for `train_bench.py --size=cpu` (16 sequences of 12 frames) and
  within 10% of it at 128 sequences of 30 frames.

  Args:
    x: `[n, s, p, c]`.
    kernel: `[p, k, c, o]` (odd `k`), same dtype as `x`.

  Returns:
    `[n, s, p, o]`.
  """
  k = kernel.shape[1]
  s, pad = x.shape[1], k // 2
  xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
  win = jnp.stack([xp[:, j:j + s] for j in range(k)],
                  axis=2)  # [n, s, k, p, c]
  return jnp.einsum('nskpc,pkcd->nspd', win, kernel)  # [n, s, p, o]
