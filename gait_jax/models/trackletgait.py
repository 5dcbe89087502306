"""TrackletGait: Haar-wavelet downsampling and a grouped temporal branch.

Zhang et al., "TrackletGait" (arXiv 2508.02143, IEEE TMM 27:8875); the
released model is `TrackletGait.py` of zhangsx26/TrackletGait
(arXiv 2508.02143 and its released code). A pointwise 3-D stem, then ten single-block
residual layers of per-frame `3x3` convolutions. Two of them halve the
resolution by a Haar transform (`gait_jax.models.wavelet`) instead of a
stride, and all but the first add a temporal branch
`tB(x) = relu(x + bn(conv_(7,1,1), groups 4(x)))` after their first
convolution. Then temporal max pooling, a 16-bin horizontal pyramid,
per-part FCs (the embedding) and a BNNeck classifier, as DeepGaitV2.

Sequences are `[n, s, h, w, c]` with an optional frame mask `[n, s]` (True =
real frame, real frames first). As in `gait_jax.models.deepgaitv2`, every
temporal convolution zeroes the padded frames of its input first (they then
act as the zero padding after a sequence's last real frame), BatchNorm
statistics in training and the temporal max pool use real frames only, so a
padded batch gives each sequence the output it gets alone.

Submodule names are the released state-dict keys (`pooling1/conv_bn_relu`,
`layerL/0/{conv1, bn1, pooling, th, thbn, conv2, bn2, downsample}`, `FCs`,
`BNNecks`); the shortcut's `downsample` counts the parameter-free max pool
of a Haar layer as its entry '0'. The backbone (everything but FCs and
BNNecks) has 10,314,688 parameters in the full layout, 4,798,048 in the
small one (`TrackletGait_s.py`).
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import baseline
from gait_jax.models import deepgaitv2
from gait_jax.models import layers
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib
from gait_jax.models import wavelet

Array = jax.Array

# pylint: disable=protected-access
_Settings = deepgaitv2._Settings
_conv, _bn, _shared = deepgaitv2._conv, deepgaitv2._bn, deepgaitv2._shared
# pylint: enable=protected-access

# Block kinds: 'plain' (two 3x3 convolutions), 'temporal' (plus the temporal
# branch), 'haar' (plus Haar downsampling before the temporal branch).
BLOCKS = ('plain', 'temporal', 'haar')

# (layer number, block kind, output channels); the layer number names the
# module `layer{number}`.
FULL = ((1, 'plain', 64), (2, 'haar', 128), (3, 'temporal', 128),
        (4, 'temporal', 128), (5, 'temporal', 128), (6, 'haar', 256),
        (7, 'temporal', 256), (8, 'temporal', 256), (9, 'temporal', 256),
        (10, 'temporal', 512))
SMALL = ((2, 'haar', 256), (6, 'haar', 512))
_TINY = ((1, 'plain', 8), (2, 'haar', 8), (3, 'temporal', 8),
         (6, 'haar', 12), (10, 'temporal', 16))

VARIANTS = {
    # CASIA-B, CCPG and SUSTech1K: TrackletGait_s (the small layout).
    'casia_b': dict(layout=SMALL, num_classes=74),
    # The layout of TG's OU-MVLP result is not stated; the full one here.
    'oumvlp': dict(layout=FULL, num_classes=5153),
    'gait3d': dict(layout=FULL, num_classes=3000),
    'grew': dict(layout=FULL, num_classes=20000),
    'ccpg': dict(layout=SMALL, num_classes=100),
    'sustech1k': dict(layout=SMALL, num_classes=250),
    # The small layout at the default (CASIA-B) class count.
    'small': dict(layout=SMALL, num_classes=74),
    # Test/demo only.
    'tiny': dict(layout=_TINY, stem_channels=4, hidden_dim=8, num_classes=8),
}


class GroupedConv(_Settings):
  """Bias-free grouped convolution (PyTorch's `groups`), stride 1.

  The parameter `kernel` `[*kernel_size, in / groups, features]` is a
  grouped `nn.Conv`'s (output channel `o` reads input group
  `o // (features / groups)`); each group runs as its own convolution
  through `gait_jax.models.ops`.

  Attributes:
    features: output channels (divisible by `groups`).
    kernel_size: kernel extent per spatial dim.
    padding: symmetric zero padding per spatial dim.
    groups: channel groups (input channels divisible by it too).
  """
  features: int = 0
  kernel_size: Sequence[int] = (7, 1, 1)
  padding: Sequence[int] = (3, 0, 0)
  groups: int = 4

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, *spatial, c]` to `[n, *spatial, features]`."""
    g, cin = self.groups, x.shape[-1]
    if cin % g or self.features % g:
      raise ValueError(f'GroupedConv: {cin} input and {self.features} output '
                       f'channels must both be divisible by groups={g}.')
    kernel = self.param('kernel', ops_lib.conv_init,
                        tuple(self.kernel_size) + (cin // g, self.features),
                        jnp.float32).astype(self.dtype)
    xs = jnp.split(x.astype(self.dtype), g, axis=-1)  # g x [n, ..., cin / g]
    ks = jnp.split(kernel, g, axis=-1)  # g x [*k, cin / g, features / g]
    strides = (1,) * len(self.kernel_size)
    return jnp.concatenate(
        [ops_lib.conv(xg, kg, strides, tuple(self.padding), ops=self.ops,
                      conv_kernel_grad=self.conv_kernel_grad)
         for xg, kg in zip(xs, ks)], axis=-1)  # [n, *spatial, features]


class Shortcut(_Settings):
  """`downsample`: [max pool `(1, 2, 2)`] [+ Conv3d `1x1x1` + BatchNorm3d].

  Entries are numbered as in PyTorch's `Sequential`: with the pool the
  convolution is '1' and the BatchNorm '2', without it '0' and '1'.

  Attributes:
    features: output channels.
    pool: halve the resolution first.
  """
  features: int = 0
  pool: bool = False

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h', w', features]`."""
    if self.pool:
      x = ops_lib.max_pool_2x2(x, ops=self.ops)  # [n, s, h / 2, w / 2, c]
    if x.shape[-1] == self.features:
      return x
    first = int(self.pool)
    y = _conv(self, self.features, (1, 1, 1), (1, 1, 1), (0, 0, 0),
              str(first))(x)  # [n, s, h', w', features]
    return _bn(self, str(first + 1))(y, train, mask)


class Block(_Settings):
  """TrackletGait's `BasicBlock2D` (one block per layer).

  `a = relu(bn1(conv1(x)))` (per frame; `in -> in` channels for 'haar',
  else `in -> features`); 'haar': `a = pooling(a)` (Haar downsampling to
  `features`); 'temporal' and 'haar': `a = relu(a + thbn(th(a)))` with `th`
  a `(7, 1, 1)` convolution in 4 groups; `out = relu(bn2(conv2(a)) +
  downsample(x))`.

  Attributes:
    kind: one of `BLOCKS`.
    features: output channels.
    groups: groups of the temporal convolution.
    temporal_kernel: its temporal extent (odd; padding keeps the frames).
  """
  kind: str = 'plain'
  features: int = 0
  groups: int = 4
  temporal_kernel: int = 7

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h', w', features]` (h' = h / 2,
    w' = w / 2 for 'haar')."""
    f, haar = self.features, self.kind == 'haar'
    h, w = x.shape[2:4]
    if haar and (h % 2 or w % 2):
      raise ValueError(f'A TrackletGait Haar layer needs an even height and '
                       f'width (its shortcut pools 2x2), got {h}x{w}.')
    mid = x.shape[-1] if haar else f
    conv1 = _conv(self, mid, (3, 3), (1, 1), (1, 1), 'conv1')
    a = layers.frame_wise(conv1, x)  # [n, s, h, w, mid]
    a = nn.relu(_bn(self, 'bn1')(a, train, mask))
    if haar:
      a = wavelet.HaarDownsampling(features=f, name='pooling',
                                   **_shared(self))(a, train, mask)
    if self.kind != 'plain':
      # The temporal conv must see zeros past each sequence's last real frame.
      k = self.temporal_kernel
      t = GroupedConv(features=f, kernel_size=(k, 1, 1),
                      padding=(k // 2, 0, 0), groups=self.groups, name='th',
                      **_shared(self))(layers.zero_padding(a, mask))
      a = nn.relu(a + _bn(self, 'thbn')(t, train, mask))  # [n, s, h', w', f]
    conv2 = _conv(self, f, (3, 3), (1, 1), (1, 1), 'conv2')
    b = _bn(self, 'bn2')(layers.frame_wise(conv2, a), train, mask)
    shortcut = Shortcut(features=f, pool=haar, name='downsample',
                        **_shared(self))(x, train, mask)
    return nn.relu(b + shortcut)


class Layer(_Settings):
  """`layerL`: a `Sequential` holding one `Block`, named '0'.

  Attributes:
    kind: the block kind (`BLOCKS`).
    features: output channels.
    groups: groups of the temporal convolution.
    temporal_kernel: its temporal extent.
    remat: rematerialise the block (`gait_jax.models.remat`).
  """
  kind: str = 'plain'
  features: int = 0
  groups: int = 4
  temporal_kernel: int = 7
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               mask: Optional[Array] = None) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s, h', w', features]`."""
    cls = remat_lib.wrap(Block, self.remat, static_argnums=(2,))
    return cls(kind=self.kind, features=self.features, groups=self.groups,
               temporal_kernel=self.temporal_kernel, name='0',
               **_shared(self))(x, train, mask)


class TrackletGait(nn.Module):
  """TrackletGait (zhangsx26/TrackletGait `TrackletGait.py`).

  Attributes:
    layout: the layers, `(number, kind, channels)` each (`FULL`, `SMALL`);
      kinds from `BLOCKS`.
    stem_channels: output channels of the stem `pooling1`.
    num_classes: classifier classes.
    hidden_dim: FCs output channels (the embedding).
    bin_num: horizontal pyramid bins.
    groups: groups of the temporal convolutions.
    temporal_kernel: their temporal extent (odd).
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the stem and
      every block in training (see `gait_jax.models.remat`).
  """
  layout: Sequence[tuple[int, str, int]] = FULL
  stem_channels: int = 16
  num_classes: int = 3000
  hidden_dim: int = 256
  bin_num: Sequence[int] = (16,)
  groups: int = 4
  temporal_kernel: int = 7
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  def _check(self, sils: Array) -> None:
    kinds = [kind for _, kind, _ in self.layout]
    bad = sorted(set(kinds) - set(BLOCKS))
    if bad:
      raise ValueError(f'Unknown TrackletGait block kind(s) '
                       f'{", ".join(map(repr, bad))}; valid: '
                       f'{", ".join(BLOCKS)}.')
    if self.temporal_kernel % 2 != 1:
      raise ValueError(f'temporal_kernel must be odd, got '
                       f'{self.temporal_kernel}.')
    if sils.ndim != 4:
      raise ValueError(f'TrackletGait takes silhouettes [n, s, h, w], got '
                       f'shape {tuple(sils.shape)}.')

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds and classifies silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1].
      mask: bool `[n, s]`, True for real frames (first), or None (all real).
      train: BatchNorm uses (and updates) batch statistics of real frames.

    Returns:
      'embeddings' `[n, p, hidden_dim]` (the FCs output), 'bnneck_embeddings'
      (normalised BNNeck features, same shape) and 'logits'
      `[n, num_classes, p]`, all float32.

    Raises:
      ValueError: an unknown block kind, an even temporal kernel, an input
        that is not `[n, s, h, w]`, or an odd size at a Haar layer.
    """
    self._check(sils)
    shared = _shared(self)
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    # The stem: Conv3d 1x1x1 with bias + BatchNorm3d + ReLU.
    stem = remat_lib.wrap(wavelet.HaarDownsampling, self.remat,
                          static_argnums=(2,))
    x = stem(features=self.stem_channels, dwt=False, name='pooling1',
             **shared)(x, train, mask)  # [n, s, h, w, stem]
    for number, kind, features in self.layout:
      x = Layer(kind=kind, features=features, groups=self.groups,
                temporal_kernel=self.temporal_kernel, remat=self.remat,
                name=f'layer{number}', **shared)(x, train, mask)
    # x: [n, s, h / 4, w / 4, C] (two Haar layers)
    x = layers.masked_max(x, mask)  # [n, h / 4, w / 4, C]
    feat = layers.horizontal_pyramid(x, self.bin_num)  # [n, p, C]
    return baseline._head(  # pylint: disable=protected-access
        feat, self.hidden_dim, self.num_classes, train, self.axis_name,
        self.dtype)
