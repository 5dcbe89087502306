"""Frame-level CNN backbones: OpenGait's Plain and ResNet9.

Both map frames `[N, h, w, 1]` to feature maps `[N, h', w', c]`; the models
fold the frame axis into the batch before calling them.
"""

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import layers
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib

Array = jax.Array


def _parse_layer(spec: str) -> tuple[str, int, int]:
  """Parses 'BC-64', 'FC-64-2' or 'M' into (type, channels, halving)."""
  parts = spec.split('-')
  if parts[0] == 'M' and len(parts) == 1:
    return 'M', 0, 0
  if parts[0] == 'BC' and len(parts) == 2:
    return 'BC', int(parts[1]), 0
  if parts[0] == 'FC' and len(parts) == 3:
    return 'FC', int(parts[1]), int(parts[2])
  raise ValueError(f"Bad Plain layer spec {spec!r}; expected 'M', 'BC-<c>' "
                   "or 'FC-<c>-<halving>'.")


def _plain_layer(mdl: 'Plain', x: Array, i: int, index: int,
                 pool: bool) -> Array:
  """Convolution `i` of `mdl` (submodule `index`), LeakyReLU[, 2x2 pool]."""
  kind, channels, halving = _parse_layer(mdl.layers_cfg[i])
  kernel, pad = (5, 2) if i == 0 else (3, 1)
  choice = dict(ops=mdl.ops, conv_kernel_grad=mdl.conv_kernel_grad,
                dtype=mdl.dtype, name=str(index), parent=mdl)
  if kind == 'BC':
    x = layers.BasicConv(channels, (kernel, kernel), padding=pad,
                         **choice)(x)
  else:
    x = layers.FocalConv2d(channels, kernel, halving, padding=pad,
                           **choice)(x)
  x = layers.leaky_relu(x)
  return ops_lib.max_pool_2x2(x, ops=mdl.ops) if pool else x


class Plain(nn.Module):
  """A plain stack of convolutions, LeakyReLUs and 2x2 max-pools.

  The first convolution is 5x5 (padding 2), all others 3x3 (padding 1).
  Submodules are named by their index in OpenGait's Sequential, where every
  convolution is followed by a LeakyReLU that takes an index of its own.

  Attributes:
    layers_cfg: e.g. ('BC-32', 'BC-32', 'M', 'FC-64-2', ...): 'BC-c' is a
      convolution, 'FC-c-h' a focal convolution with halving h, 'M' a pool.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
    remat: rematerialise each block (`gait_jax.models.remat`).
  """
  layers_cfg: Sequence[str]
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[N, h, w, c]` to `[N, h', w', c']`."""
    specs = [_parse_layer(spec)[0] for spec in self.layers_cfg]
    index, i = 0, 0
    while i < len(specs):
      if specs[i] == 'M':
        if i == 0:
          raise ValueError('The first Plain layer must be a convolution.')
        x = ops_lib.max_pool_2x2(x, ops=self.ops)
        index, i = index + 1, i + 1
        continue
      # A block: the convolution, its LeakyReLU and a pool right after them.
      pool = i + 1 < len(specs) and specs[i + 1] == 'M'
      layer = functools.partial(_plain_layer, i=i, index=index, pool=pool)
      x = remat_lib.checkpoint(layer, self.remat)(self, x)
      index, i = index + 2 + int(pool), i + 1 + int(pool)
    return x


def _conv(module: nn.Module, features: int, kernel: int, stride: int,
          name: str) -> ops_lib.Conv:
  """A square convolution with `module`'s dtype and op choice."""
  pad = kernel // 2
  return ops_lib.Conv(features, (kernel, kernel), (stride, stride),
                      (pad, pad), ops=module.ops,
                      conv_kernel_grad=module.conv_kernel_grad,
                      dtype=module.dtype, name=name)


class Downsample(nn.Module):
  """1x1 strided convolution + BatchNorm on a residual shortcut."""
  features: int
  stride: int
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    x = _conv(self, self.features, 1, self.stride, '0')(x)
    return layers.BatchNorm(axis_name=self.axis_name, dtype=self.dtype,
                            name='1')(x, train, mask)


class BasicBlock(nn.Module):
  """ResNet basic block: two 3x3 conv-BN pairs with a residual connection.

  Attributes:
    features: output channels.
    stride: stride of the first convolution (and of the shortcut).
    downsample: project the shortcut (1x1 conv + BN).
    axis_name: BatchNorm reduction axis.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  stride: int = 1
  downsample: bool = False
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[N, h, w, c]` to `[N, h / stride, w / stride, features]`."""
    def bn(name):
      return layers.BatchNorm(axis_name=self.axis_name, dtype=self.dtype,
                              name=name)
    y = _conv(self, self.features, 3, self.stride, 'conv1')(x)
    y = nn.relu(bn('bn1')(y, train, mask))
    y = _conv(self, self.features, 3, 1, 'conv2')(y)
    y = bn('bn2')(y, train, mask)
    if self.downsample:
      x = Downsample(self.features, self.stride, self.axis_name, self.dtype,
                     ops=self.ops, conv_kernel_grad=self.conv_kernel_grad,
                     name='downsample')(x, train, mask)
    return nn.relu(y + x)


class ResLayer(nn.Module):
  """A stage of basic blocks; blocks are named '0', '1', ... like PyTorch's.

  Attributes:
    features: output channels.
    blocks: number of blocks.
    stride: stride of the first block.
    in_features: input channels (decides whether the shortcut is projected).
    axis_name: BatchNorm reduction axis.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
    remat: rematerialise each block (`gait_jax.models.remat`).
  """
  features: int
  blocks: int
  stride: int
  in_features: int
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    inplanes = self.in_features
    block = remat_lib.wrap(BasicBlock, self.remat, static_argnums=(2,))
    for j in range(self.blocks):
      s = self.stride if j == 0 else 1
      x = block(self.features, s,
                     downsample=(s != 1 or inplanes != self.features),
                     axis_name=self.axis_name, dtype=self.dtype,
                     ops=self.ops, conv_kernel_grad=self.conv_kernel_grad,
                     name=str(j))(x, train, mask)
      inplanes = self.features
    return x


def _stem(mdl: 'ResNet9', x: Array, train: bool,
          mask: Optional[Array]) -> Array:
  """ResNet9's 3x3 stem: conv1, bn1 (submodules of `mdl`), ReLU."""
  x = layers.BasicConv(mdl.channels[0], (3, 3), padding=1, dtype=mdl.dtype,
                       ops=mdl.ops, conv_kernel_grad=mdl.conv_kernel_grad,
                       name='conv1', parent=mdl)(x)
  x = layers.BatchNorm(axis_name=mdl.axis_name, dtype=mdl.dtype,
                       name='bn1', parent=mdl)(x, train, mask)
  return nn.relu(x)


class ResNet9(nn.Module):
  """OpenGait's ResNet9: a 3x3 stem and four stages of basic blocks.

  Attributes:
    channels: output channels of the stem/stage 1 and stages 2-4.
    layers: number of blocks per stage.
    strides: stride of each stage's first block.
    axis_name: BatchNorm reduction axis.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
    remat: rematerialise the stem and each block (`gait_jax.models.remat`).
  """
  channels: Sequence[int] = (64, 128, 256, 512)
  layers: Sequence[int] = (1, 1, 1, 1)
  strides: Sequence[int] = (1, 2, 2, 1)
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[N, h, w, 1]` to `[N, h / 4, w / 4, channels[-1]]`.

    Args:
      x: frames.
      train: BatchNorm mode.
      mask: optional bool `[N]`; only real frames feed batch statistics.

    Returns:
      Feature maps.
    """
    x = remat_lib.checkpoint(_stem, self.remat, static_argnums=(2,))(
        self, x, train, mask)
    inplanes = self.channels[0]
    for i, (planes, blocks, stride) in enumerate(
        zip(self.channels, self.layers, self.strides)):
      x = ResLayer(planes, blocks, stride, inplanes, self.axis_name,
                   self.dtype, ops=self.ops,
                   conv_kernel_grad=self.conv_kernel_grad,
                   remat=self.remat, name=f'layer{i + 1}')(x, train, mask)
      inplanes = planes
    return x
