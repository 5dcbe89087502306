"""Haar-wavelet downsampling (TrackletGait's `HWDownsampling_2D`).

A frame `[..., h, w, c]` is split into its four one-level Haar sub-bands
(orthonormal: 1/sqrt(2) per axis), each at half the resolution, and the
sub-bands are stacked along the channels; a 1x1 convolution with bias,
BatchNorm and ReLU then mixes them into the output channels. Unlike a
strided convolution or a pool, the transform itself loses nothing: it is an
orthonormal change of basis of every 2x2 block.

Submodule names follow TrackletGait's state-dict keys (`conv_bn_relu.0` the
convolution, `conv_bn_relu.1` the BatchNorm), so the generic OpenGait key
mapping of `gait_jax.torch_compat` applies.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import deepgaitv2
from gait_jax.models import layers
from gait_jax.models import ops as ops_lib

Array = jax.Array

# The settings every model submodule shares (BatchNorm axis, dtype, ops).
# pylint: disable=protected-access
_Settings, _bn, _shared = (deepgaitv2._Settings, deepgaitv2._bn,
                           deepgaitv2._shared)
# pylint: enable=protected-access

BANDS = 4  # LL, high along the width, high along the height, HH.


def haar_dwt2(x: Array) -> Array:
  """One-level 2-D Haar transform of channels-last frames.

  For each 2x2 block `a = x[2i, 2j]`, `b = x[2i, 2j+1]`, `c = x[2i+1, 2j]`,
  `d = x[2i+1, 2j+1]` the sub-bands are, in this order,
  `(a+b+c+d)/2` (LL), `(a-b+c-d)/2` (high along the width),
  `(a+b-c-d)/2` (high along the height) and `(a-b-c+d)/2`, as torch-dwt's
  `dwt2(x, 'haar')`. An odd height or width is zero-padded at the end.

  Args:
    x: `[..., h, w, c]`.

  Returns:
    `[..., ceil(h / 2), ceil(w / 2), 4 * c]`, sub-band-major: channel
    `band * c + k` is sub-band `band` of input channel `k` (the order of
    TrackletGait's 1x1 convolution weights).
  """
  h, w = x.shape[-3:-1]
  pad = [(0, 0)] * (x.ndim - 3) + [(0, h % 2), (0, w % 2), (0, 0)]
  x = jnp.pad(x, pad)  # [..., 2h', 2w', c]
  a = x[..., 0::2, 0::2, :]  # [..., h', w', c]
  b = x[..., 0::2, 1::2, :]
  c = x[..., 1::2, 0::2, :]
  d = x[..., 1::2, 1::2, :]
  bands = ((a + b) + (c + d), (a - b) + (c - d), (a + b) - (c + d),
           (a - b) - (c - d))
  y = jnp.stack(bands, axis=-2) * jnp.asarray(0.5, x.dtype)  # [..., 4, c]
  return y.reshape(y.shape[:-2] + (BANDS * x.shape[-1],))  # [..., h', w', 4c]


class BiasedConv(nn.Module):
  """N-D convolution with a bias, stride 1 and no padding (1x1 mixing).

  Parameters `kernel` `[*kernel_size, in, features]` (Xavier-uniform, as
  `ops.Conv`) and `bias` `[features]` (zeros, OpenGait's initialisation).

  Attributes:
    features: output channels.
    kernel_size: kernel extent per spatial dim (its length sets N).
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
    dtype: compute dtype.
  """
  features: int
  kernel_size: tuple[int, ...] = (1, 1)
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, *spatial, c]` to `[n, *spatial', features]`."""
    nd = len(self.kernel_size)
    kernel = self.param('kernel', ops_lib.conv_init,
                        tuple(self.kernel_size) + (x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,),
                      jnp.float32)
    y = ops_lib.conv(x.astype(self.dtype), kernel.astype(self.dtype),
                     (1,) * nd, (0,) * nd, ops=self.ops,
                     conv_kernel_grad=self.conv_kernel_grad)
    return y + bias.astype(self.dtype)


class PointwiseConvBN(_Settings):
  """1x1(x1) convolution with bias + BatchNorm + ReLU on `[n, s, h, w, c]`.

  Submodules '0' (`BiasedConv`) and '1' (`layers.BatchNorm`), as PyTorch's
  `Sequential(Conv, BatchNorm, ReLU)`; the module fields `axis_name`,
  `dtype`, `ops` and `conv_kernel_grad` are DeepGaitV2's.

  Attributes:
    features: output channels.
    kernel_dims: 3 (a Conv3d `1x1x1` on the sequence) or 2 (a Conv2d `1x1`
      applied frame by frame); the same map, a different kernel shape.
  """
  features: int = 0
  kernel_dims: int = 2

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h, w, features]`."""
    conv = BiasedConv(self.features, (1,) * self.kernel_dims, ops=self.ops,
                      conv_kernel_grad=self.conv_kernel_grad,
                      dtype=self.dtype, name='0')
    y = conv(x) if self.kernel_dims == 3 else layers.frame_wise(conv, x)
    y = _bn(self, '1')(y, train, mask)  # [n, s, h, w, features]
    return nn.relu(y)


class HaarDownsampling(_Settings):
  """`HWDownsampling_2D`: per-frame `haar_dwt2`, then a `PointwiseConvBN`
  named 'conv_bn_relu' (4c -> features channels).

  With `dwt=False` there is no transform and the convolution is a Conv3d
  `1x1x1` (TrackletGait's stem `pooling1`, an `HWDownsampling_1D` with its
  DWT off).

  Attributes:
    features: output channels.
    dwt: apply the Haar transform (else keep the resolution).
  """
  features: int = 0
  dwt: bool = True

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, ceil(h/2), ceil(w/2), features]`
    (`[n, s, h, w, features]` without the DWT)."""
    if self.dwt:
      x = haar_dwt2(x)  # [n, s, h / 2, w / 2, 4c]
    return PointwiseConvBN(features=self.features,
                           kernel_dims=2 if self.dwt else 3,
                           name='conv_bn_relu',
                           **_shared(self))(x, train, mask)
