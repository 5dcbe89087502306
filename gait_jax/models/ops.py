"""The one place where the models' ops choose an implementation.

Every op the models call that has a rewritten form comes in two
implementations: a reference one (stock `jax.lax`: `conv_general_dilated`,
`reduce_window`) and, where it measured faster on CPUs, a CPU-tuned one
(`gait_jax.models.cpu_ops`). Model code calls the functions and the `Conv`
module below with its `ops` attribute; which implementation runs is decided
here, by `ops`:

* 'auto' (default): per platform with `jax.lax.platform_dependent`: the
  CPU-tuned forms on CPUs, the reference ones on every other platform. The
  choice is made when the program is lowered, so a function traced once and
  lowered for a GPU or TPU contains none of the CPU forms.
* 'reference': the reference forms on every platform.
* 'cpu': the CPU-tuned forms on every platform (to test or time them).

`conv_kernel_grad` ('auto', 'taps' or 'xla'; see `cpu_ops.KERNEL_GRADS`)
chooses the kernel gradient of the CPU-tuned 2-D convolution; it is a static
argument of the traced function and has no effect where the reference
convolution runs.

Both implementations of an op have the same parameters and the same results
up to float32 summation order; the gradient of the max pool goes to the first
maximum of each window in both.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.models import cpu_ops

Array = jax.Array
Dtype = Any
Padding = tuple[tuple[int, int], ...]

OPS = ('auto', 'reference', 'cpu')
KERNEL_GRADS = cpu_ops.KERNEL_GRADS
check_kernel_grad = cpu_ops.check_kernel_grad

# OpenGait initialises every convolution with Xavier-uniform; Flax's fan rule
# for a `[*k, in, out]` kernel equals PyTorch's for `[out, in, *k]`.
conv_init = nn.initializers.xavier_uniform()


def check_ops(ops: str) -> str:
  """Returns `ops` if it is a valid `ops` value, else raises ValueError."""
  if ops not in OPS:
    raise ValueError(f'Unknown ops {ops!r}; valid: {", ".join(OPS)}.')
  return ops


def _select(ops: str, tuned: Optional[Callable[..., Array]],
            reference: Callable[..., Array], *args: Array) -> Array:
  """Runs `tuned` or `reference` on `args` as `ops` says (see the module).

  Args:
    ops: one of `OPS`.
    tuned: the CPU-tuned form, or None where the op has none for these
      arguments (the reference then runs everywhere).
    reference: the reference form.
    *args: arrays passed to either.

  Returns:
    The chosen form's result.
  """
  check_ops(ops)
  if tuned is None or ops == 'reference':
    return reference(*args)
  if ops == 'cpu':
    return tuned(*args)
  return jax.lax.platform_dependent(*args, cpu=tuned, default=reference)


def _pairs(padding: Sequence[Any]) -> Padding:
  """`(p, ...)` or `((lo, hi), ...)` → `((lo, hi), ...)`."""
  return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def reference_conv(x: Array, kernel: Array, strides: Sequence[int],
                   padding: Padding) -> Array:
  """Channels-last convolution by `lax.conv_general_dilated` (1–3-D).

  Args:
    x: `[n, *spatial, c]`.
    kernel: `[*k, c, o]`, same dtype as `x`.
    strides: one per spatial dim.
    padding: `(lo, hi)` zero padding per spatial dim.

  Returns:
    `[n, *spatial', o]`.
  """
  spatial = 'DHW'[-(x.ndim - 2):]
  dims = ('N' + spatial + 'C', spatial + 'IO', 'N' + spatial + 'C')
  return jax.lax.conv_general_dilated(x, kernel, tuple(strides),
                                      tuple(padding), dimension_numbers=dims)


def _tuned_conv(kernel_shape: Sequence[int], strides: Sequence[int],
                padding: Padding, kernel_grad: str
                ) -> Optional[Callable[[Array, Array], Array]]:
  """The CPU-tuned form of a convolution of this geometry, or None."""
  nd = len(kernel_shape) - 2
  strides, padding = tuple(strides), tuple(padding)
  if nd == 2:
    return lambda x, k: cpu_ops.conv2d(x, k, strides, padding, kernel_grad)
  if nd == 3 and strides[0] == 1:
    return lambda x, k: cpu_ops.time_folded_conv3d(x, k, strides, padding,
                                                   kernel_grad)
  if (nd == 3 and tuple(kernel_shape[1:3]) == (1, 1)
      and strides == (kernel_shape[0], 1, 1)
      and padding == ((0, 0),) * 3):
    return cpu_ops.strided_time_conv
  return None


def conv(x: Array, kernel: Array, strides: Sequence[int],
         padding: Sequence[Any], *, ops: str = 'auto',
         conv_kernel_grad: str = 'auto') -> Array:
  """Bias-free channels-last convolution, 1-, 2- or 3-D.

  CPU-tuned forms: 2-D convolutions (`cpu_ops.conv2d`), 3-D ones with
  temporal stride 1 (`cpu_ops.time_folded_conv3d`) and 3-D ones whose kernel
  `(k, 1, 1)` equals the stride, unpadded (`cpu_ops.strided_time_conv`).
  Other geometries run the reference on every platform.

  Args:
    x: `[n, *spatial, c]` (2-D: `[n, h, w, c]`; 3-D: `[n, t, h, w, c]`).
    kernel: `[*k, c, o]`, same dtype as `x`.
    strides: one per spatial dim.
    padding: per spatial dim, `p` (symmetric) or `(lo, hi)` zero padding.
    ops: one of `OPS`.
    conv_kernel_grad: one of `KERNEL_GRADS`.

  Returns:
    `[n, *spatial', o]`.
  """
  cpu_ops.check_kernel_grad(conv_kernel_grad)
  padding = _pairs(padding)
  tuned = _tuned_conv(kernel.shape, strides, padding, conv_kernel_grad)
  return _select(ops, tuned,
                 lambda a, k: reference_conv(a, k, strides, padding),
                 x, kernel)


def reference_max_pool_2x2(x: Array) -> Array:
  """2×2, stride-2 VALID max pooling by `lax.reduce_window`."""
  window = (1,) * (x.ndim - 3) + (2, 2, 1)
  # A concrete -inf init makes this the differentiable `reduce_window_max`.
  return jax.lax.reduce_window(x, np.array(-np.inf, x.dtype), jax.lax.max,
                               window, window, 'VALID')


def max_pool_2x2(x: Array, *, ops: str = 'auto') -> Array:
  """2×2 max pooling with stride 2 over `[..., h, w, c]` (as PyTorch's).

  An odd last row or column is dropped; the gradient goes to the first
  maximum of each window in row-major order. CPU-tuned form:
  `cpu_ops.max_pool_2x2`.

  Args:
    x: `[..., h, w, c]`.
    ops: one of `OPS`.

  Returns:
    `[..., h // 2, w // 2, c]`.
  """
  return _select(ops, cpu_ops.max_pool_2x2, reference_max_pool_2x2, x)


def reference_part_conv1d(x: Array, kernel: Array) -> Array:
  """Per-part temporal convolution as one grouped 1-D convolution.

  Args:
    x: `[n, s, p, c]`.
    kernel: `[p, k, c, o]` (odd `k`, zero padding `k // 2`).

  Returns:
    `[n, s, p, o]`.
  """
  n, s, p, c = x.shape
  _, k, _, o = kernel.shape
  w = jnp.transpose(kernel, (1, 2, 0, 3)).reshape(k, c, p * o)  # [k, c, p*o]
  y = jax.lax.conv_general_dilated(
      x.reshape(n, s, p * c), w, (1,), ((k // 2, k // 2),),
      dimension_numbers=('NWC', 'WIO', 'NWC'),
      feature_group_count=p)  # [n, s, p * o]
  return y.reshape(n, s, p, o)


def part_conv1d(x: Array, kernel: Array, *, ops: str = 'auto') -> Array:
  """Bias-free temporal convolution with separate weights for every part.

  Zero padding `k // 2` keeps the frame count. CPU-tuned form:
  `cpu_ops.part_conv1d`.

  Args:
    x: `[n, s, p, c]`.
    kernel: `[p, k, c, o]` (odd `k`), same dtype as `x`.
    ops: one of `OPS`.

  Returns:
    `[n, s, p, o]`.
  """
  return _select(ops, cpu_ops.part_conv1d, reference_part_conv1d, x, kernel)


class Conv(nn.Module):
  """Bias-free N-D convolution holding the parameter `nn.Conv` would.

  The parameter is `kernel` `[*kernel_size, in, features]` (float32, Xavier-
  uniform), as a bias-free `nn.Conv`'s, so checkpoints and the OpenGait
  converter see no difference; the convolution is `conv`.

  Attributes:
    features: output channels.
    kernel_size: kernel extent per spatial dim (its length sets N).
    strides: per-dim strides (default 1).
    padding: per-dim symmetric zero padding (default 0).
    ops: one of `OPS`.
    conv_kernel_grad: one of `KERNEL_GRADS`.
    dtype: compute dtype.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Optional[Sequence[int]] = None
  padding: Optional[Sequence[int]] = None
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, *spatial, c]` to `[n, *spatial', features]`."""
    nd = len(self.kernel_size)
    kernel = self.param('kernel', conv_init,
                        tuple(self.kernel_size) + (x.shape[-1], self.features),
                        jnp.float32)
    strides = (1,) * nd if self.strides is None else tuple(self.strides)
    padding = (0,) * nd if self.padding is None else tuple(self.padding)
    return conv(x.astype(self.dtype), kernel.astype(self.dtype), strides,
                padding, ops=self.ops,
                conv_kernel_grad=self.conv_kernel_grad)
