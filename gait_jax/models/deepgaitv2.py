"""OpenGait's DeepGaitV2: a deep residual backbone in 2-D, P3D or 3-D form.

Fan et al., "Exploring Deep Models for Practical Gait Recognition" (2023).
Stem and stage 1 run frame by frame; stages 2-4 are 2-D ResNet blocks, P3D
blocks (2-D convolutions plus a residual `(3, 1, 1)` temporal convolution) or
3-D blocks (`3x3x3` convolutions). Then temporal max pooling, a 16-bin
horizontal pyramid, per-part FCs and a BNNeck classifier, as in GaitBase.

Sequences are `[n, s, h, w, c]` with an optional frame mask `[n, s]` (True =
real frame, real frames first). Every temporal convolution zeroes the padded
frames of its input first, so they act as the zero padding after a
sequence's last real frame; BatchNorm statistics in training and the
temporal max pool use real frames only. A padded batch therefore gives each
sequence the output it gets alone.

Submodule names follow OpenGait's state-dict keys (`layer0`, `layer2/0/conv1`,
`shortcut3d`, `sbn`, `downsample`, `FCs`, `BNNecks`); the converter inserts
the `forward_block` segments of OpenGait's SetBlockWrapper.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import backbones
from gait_jax.models import baseline
from gait_jax.models import layers
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib

Array = jax.Array

MODES = ('p3d', '2d', '3d')
WIDTHS = (44, 88)  # OpenGait asserts one of these input widths.
_FULL = (64, 128, 256, 512)
_DEEP = (1, 4, 4, 1)

VARIANTS = {
    'casia_b': dict(layers=(1, 1, 1, 1), channels=_FULL, num_classes=74),
    'oumvlp': dict(layers=(1, 1, 1, 1), channels=_FULL, num_classes=5153),
    'gait3d': dict(layers=_DEEP, channels=_FULL, num_classes=3000),
    'grew': dict(layers=_DEEP, channels=_FULL, num_classes=20000),
    'ccpg': dict(layers=(1, 1, 1, 1), channels=_FULL, num_classes=100),
    'sustech1k': dict(layers=(1, 1, 1, 1), channels=_FULL, num_classes=250),
    # Test/demo only.
    'tiny': dict(layers=(1, 1, 1, 1), channels=(4, 8, 8, 16), num_classes=8),
}


def _frame_mask(mask: Optional[Array]) -> Optional[Array]:
  """`[n, s]` -> `[n * s]` (the mask of frames folded into the batch)."""
  return None if mask is None else mask.reshape(-1)


class _Settings(nn.Module):
  """Fields every DeepGaitV2 submodule shares (BatchNorm axis, ops, dtype)."""
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'


def _conv(m: _Settings, features: int, kernel: Sequence[int],
          strides: Sequence[int], padding: Sequence[int],
          name: str) -> ops_lib.Conv:
  """A bias-free convolution with `m`'s dtype and op choice."""
  return ops_lib.Conv(features, tuple(kernel), tuple(strides), tuple(padding),
                      ops=m.ops, conv_kernel_grad=m.conv_kernel_grad,
                      dtype=m.dtype, name=name)


def _bn(m: _Settings, name: str) -> layers.BatchNorm:
  """A BatchNorm with `m`'s reduction axis and dtype."""
  return layers.BatchNorm(axis_name=m.axis_name, dtype=m.dtype, name=name)


def _shared(m: nn.Module) -> dict[str, Any]:
  """The `_Settings` fields of `m`, to pass on to a submodule."""
  return dict(axis_name=m.axis_name, dtype=m.dtype, ops=m.ops,
              conv_kernel_grad=m.conv_kernel_grad)


class FrameConvBN(_Settings):
  """Per-frame 3x3 convolution + BatchNorm (+ ReLU): SetBlockWrapper(
  Sequential(conv3x3, BatchNorm2d[, ReLU])), submodules '0' and '1'.

  Attributes:
    features: output channels.
    stride: spatial stride.
    relu: end with a ReLU.
  """
  features: int = 0
  stride: int = 1
  relu: bool = True

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h / stride, w / stride, features]`."""
    conv = _conv(self, self.features, (3, 3), (self.stride,) * 2, (1, 1), '0')
    y = layers.frame_wise(conv, x)  # [n, s, h', w', features]
    y = _bn(self, '1')(y, train, mask)
    return nn.relu(y) if self.relu else y


class Downsample3d(_Settings):
  """Shortcut projection: Conv3d `1x1x1`, stride `(1, s, s)` + BatchNorm3d."""
  features: int = 0
  stride: int = 1

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h / stride, w / stride, features]`."""
    y = _conv(self, self.features, (1, 1, 1), (1, self.stride, self.stride),
                  (0, 0, 0), '0')(x)
    return _bn(self, '1')(y, train, mask)


class BasicBlockP3D(_Settings):
  """P3D block: per-frame conv1, a residual temporal conv, per-frame conv2.

  `a = relu(bn(conv3x3_s(x)))`; `a = relu(a + sbn(conv_(3,1,1)(a)))`;
  `out = relu(bn(conv3x3(a)) + shortcut(x))`.

  Attributes:
    features: output channels.
    stride: spatial stride of conv1 and the shortcut.
    downsample: project the shortcut (`Downsample3d`).
  """
  features: int = 0
  stride: int = 1
  downsample: bool = False

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h / stride, w / stride, features]`."""
    f = self.features
    a = FrameConvBN(features=f, stride=self.stride, relu=True,
                    name='conv1', **_shared(self))(x, train, mask)
    # The temporal conv must see zeros past each sequence's last real frame.
    t = _conv(self, f, (3, 1, 1), (1, 1, 1), (1, 0, 0), 'shortcut3d')(
        layers.zero_padding(a, mask))  # [n, s, h', w', f]
    a = nn.relu(a + _bn(self, 'sbn')(t, train, mask))
    b = FrameConvBN(features=f, stride=1, relu=False, name='conv2',
                    **_shared(self))(a, train, mask)
    if self.downsample:
      x = Downsample3d(features=f, stride=self.stride, name='downsample',
                       **_shared(self))(x, train, mask)
    return nn.relu(b + x)


class BasicBlock3D(_Settings):
  """3-D block: two `3x3x3` conv-BN pairs (first stride `(1, s, s)`).

  Attributes:
    features: output channels.
    stride: spatial stride of conv1 and the shortcut.
    downsample: project the shortcut (`Downsample3d`).
  """
  features: int = 0
  stride: int = 1
  downsample: bool = False

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h / stride, w / stride, features]`."""
    f, s = self.features, self.stride
    y = _conv(self, f, (3, 3, 3), (1, s, s), (1, 1, 1), 'conv1')(
        layers.zero_padding(x, mask))  # [n, s, h', w', f]
    y = nn.relu(_bn(self, 'bn1')(y, train, mask))
    y = _conv(self, f, (3, 3, 3), (1, 1, 1), (1, 1, 1), 'conv2')(
        layers.zero_padding(y, mask))
    y = _bn(self, 'bn2')(y, train, mask)
    if self.downsample:
      x = Downsample3d(features=f, stride=s, name='downsample',
                       **_shared(self))(x, train, mask)
    return nn.relu(y + x)


class SequenceStage(_Settings):
  """A stage of P3D or 3-D blocks, named '0', '1', ... (OpenGait's
  `make_layer`: only the first block strides and may project the shortcut).

  Attributes:
    block: 'p3d' or '3d'.
    features: output channels.
    blocks: number of blocks.
    stride: spatial stride of the first block.
    in_features: input channels.
    remat: rematerialise each block (`gait_jax.models.remat`).
  """
  block: str = 'p3d'
  features: int = 0
  blocks: int = 1
  stride: int = 1
  in_features: int = 0
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h / stride, w / stride, features]`."""
    cls = remat_lib.wrap(BasicBlockP3D if self.block == 'p3d' else
                         BasicBlock3D, self.remat, static_argnums=(2,))
    for j in range(self.blocks):
      first = j == 0
      x = cls(features=self.features, stride=self.stride if first else 1,
              downsample=first and (self.stride != 1 or
                                    self.in_features != self.features),
              name=str(j), **_shared(self))(x, train, mask)
    return x


class DeepGaitV2(nn.Module):
  """DeepGaitV2 (OpenGait `modeling/models/deepgaitv2.py`).

  Attributes:
    mode: 'p3d' (every shipped OpenGait config), '2d' or '3d'; the block type
      of stages 2-4.
    layers: blocks per stage (OpenGait: (1, 1, 1, 1) or (1, 4, 4, 1)).
    channels: stage channels C0..C3.
    use_emb2: the inference 'embeddings' are the BNNeck features (OpenGait's
      `use_emb2`) instead of the FCs output.
    num_classes: classifier classes.
    hidden_dim: FCs output channels; None means `channels[2]` (OpenGait's
      `SeparateFCs(16, C3, C2)`).
    bin_num: horizontal pyramid bins.
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the stem and
      every residual block in training (see `gait_jax.models.remat`).
  """
  mode: str = 'p3d'
  layers: Sequence[int] = (1, 1, 1, 1)
  channels: Sequence[int] = _FULL
  use_emb2: bool = False
  num_classes: int = 74
  hidden_dim: Optional[int] = None
  bin_num: Sequence[int] = (16,)
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  def _check(self, sils: Array) -> None:
    if self.mode not in MODES:
      raise ValueError(f'Unknown DeepGaitV2 mode {self.mode!r}; valid: '
                       f'{", ".join(MODES)}.')
    if len(self.layers) != 4 or len(self.channels) != 4:
      raise ValueError(f'DeepGaitV2 needs 4 layers and 4 channels, got '
                       f'{tuple(self.layers)} and {tuple(self.channels)}.')
    if sils.ndim != 4 or sils.shape[-1] not in WIDTHS:
      raise ValueError(f'DeepGaitV2 takes silhouettes [n, s, h, w] of width '
                       f'44 or 88 (as OpenGait asserts), got shape '
                       f'{tuple(sils.shape)}.')

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds and classifies silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1], `w` 44 or 88.
      mask: bool `[n, s]`, True for real frames (first), or None (all real).
      train: BatchNorm uses (and updates) batch statistics of real frames.

    Returns:
      'embeddings' `[n, p, hidden]` (the FCs output, or the BNNeck features
      when `use_emb2`), 'bnneck_embeddings' (normalised BNNeck features, same
      shape) and 'logits' `[n, num_classes, p]`, all float32.

    Raises:
      ValueError: bad mode, layers/channels lengths or input width.
    """
    self._check(sils)
    shared = _shared(self)
    c0 = self.channels[0]
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    stem = remat_lib.wrap(FrameConvBN, self.remat, static_argnums=(2,))
    x = stem(features=c0, name='layer0', **shared)(x, train, mask)
    fmask = _frame_mask(mask)
    stage1 = backbones.ResLayer(c0, self.layers[0], 1, c0, name='layer1',
                                remat=self.remat, **shared)
    x = layers.frame_wise(lambda z: stage1(z, train, fmask), x)
    # x: [n, s, h, w, C0]
    inplanes = c0
    for i, stride in ((1, 2), (2, 2), (3, 1)):
      planes, blocks, name = self.channels[i], self.layers[i], f'layer{i + 1}'
      if self.mode == '2d':
        stage = backbones.ResLayer(planes, blocks, stride, inplanes,
                                   name=name, remat=self.remat, **shared)
        x = layers.frame_wise(lambda z, f=stage: f(z, train, fmask), x)
      else:
        x = SequenceStage(block=self.mode, features=planes, blocks=blocks,
                          stride=stride, in_features=inplanes,
                          remat=self.remat, name=name,
                          **shared)(x, train, mask)
      inplanes = planes
    # x: [n, s, h / 4, w / 4, C3]
    x = layers.masked_max(x, mask)  # [n, h / 4, w / 4, C3]
    feat = layers.horizontal_pyramid(x, self.bin_num)  # [n, p, C3]
    hidden = self.channels[2] if self.hidden_dim is None else self.hidden_dim
    out = baseline._head(  # pylint: disable=protected-access
        feat, hidden, self.num_classes, train, self.axis_name, self.dtype)
    if self.use_emb2:
      out['embeddings'] = out['bnneck_embeddings']
    return out
