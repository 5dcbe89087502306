"""OpenGait's SwinGait: DeepGaitV2's first layers, then 3-D Swin stages.

Fan et al., "Exploring Deep Models for Practical Gait Recognition" (2023),
OpenGait `modeling/models/swingait.py`. The stem is DeepGaitV2's `layer0`
(per-frame conv3x3 + BN + ReLU), `layer1` (2-D basic blocks) and `layer2`
(P3D blocks, stride 2), reusing `gait_jax.models.deepgaitv2`'s blocks. Every
frame is then resized bilinearly (align_corners=True) to 30x20, and a Video
Swin transformer (`gait_jax.models.swin3d`: patch [1, 2, 2] -> 15x10 tokens,
stage 0 doubling its channels at the end, stage 1) gives
`[n, s, 15, 10, 2 * embed_dim]`. Temporal max pooling, a 15-bin horizontal
pyramid, the last part appended again without gradient (16 parts),
per-part FCs and a BNNeck classifier; the appended part is dropped from all
outputs (15 parts).

OpenGait feeds 64x64 frames (`BaseSilTransform`, no cutting); since the
resize fixes the transformer's grid, any frame size runs (and 64x44 frames
give the same parameters).

Frame masks `[n, s]` (True = real frame, real frames first): the stem masks
as DeepGaitV2 does, the transformer reproduces each sequence's windows as if
it ran alone (see `swin3d`), and the temporal max uses real frames only, so a
padded batch gives each sequence its own output. Stochastic depth (rate
`drop_path_rate`, rising over the blocks) runs in training when the apply call
has a 'dropout' rng.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.models import backbones
from gait_jax.models import baseline
from gait_jax.models import deepgaitv2
from gait_jax.models import layers
from gait_jax.models import remat as remat_lib
from gait_jax.models import swin3d

Array = jax.Array

_SHALLOW = (1, 1, 2, 2)  # OpenGait's B1122 (CCPG, SUSTech1K).
_DEEP = (1, 4, 4, 2)  # OpenGait's B1442 (Gait3D, GREW).

VARIANTS = {
    # OpenGait configs/swingait/swingait3D_<layers>C2_<dataset>.yaml.
    'gait3d': dict(layers=_DEEP, num_classes=3000),
    'grew': dict(layers=_DEEP, num_classes=20000),
    'ccpg': dict(layers=_SHALLOW, num_classes=100),
    'sustech1k': dict(layers=_SHALLOW, num_classes=250),
    # No OpenGait config (every registered model has these two): the shallow
    # and the deep layout at CASIA-B's and OU-MVLP's class counts.
    'casia_b': dict(layers=_SHALLOW, num_classes=74),
    'oumvlp': dict(layers=_DEEP, num_classes=5153),
    # Test/demo only.
    'tiny': dict(layers=(1, 1, 2, 2), channels=(4, 8), embed_dim=8,
                 heads=(2, 2), hidden_dim=8, num_classes=8),
}


def interpolation_matrix(size_in: int, size_out: int) -> np.ndarray:
  """`[size_out, size_in]` weights of 1-D linear resizing with
  align_corners=True (PyTorch's `UpsamplingBilinear2d`)."""
  m = np.zeros((size_out, size_in), np.float64)
  scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
  for i in range(size_out):
    src = i * scale
    lo = min(int(np.floor(src)), size_in - 1)
    hi = min(lo + 1, size_in - 1)
    frac = src - lo
    m[i, lo] += 1.0 - frac
    m[i, hi] += frac
  return m


def resize_bilinear(x: Array, size: Sequence[int]) -> Array:
  """Resizes `[..., h, w, c]` to `[..., *size, c]` (align_corners=True)."""
  h, w = x.shape[-3:-1]
  mh = jnp.asarray(interpolation_matrix(h, size[0]), x.dtype)
  mw = jnp.asarray(interpolation_matrix(w, size[1]), x.dtype)
  x = jnp.einsum('oh,...hwc->...owc', mh, x)
  return jnp.einsum('pw,...owc->...opc', mw, x)


class SwinGait(nn.Module):
  """SwinGait (OpenGait `modeling/models/swingait.py`).

  Attributes:
    layers: blocks of layer1, layer2 (DeepGaitV2 stem) and of the two Swin
      stages (OpenGait's `Backbone.layers`, e.g. (1, 4, 4, 2)).
    channels: stem channels (layer0/1, layer2).
    embed_dim: Swin stage-0 channels (stage 1 and the output: twice that).
    heads: attention heads of the two Swin stages.
    window: attention window (frames, h, w).
    patch: patch size (frames, h, w).
    resize: the per-frame bilinear resize before the transformer.
    drop_path_rate: largest stochastic-depth rate (training only).
    num_classes: classifier classes.
    hidden_dim: FCs output channels.
    bin_num: horizontal pyramid bins.
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': the stem's convolutions (see
      `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla' (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the stem's and
      the transformer's blocks in training (see `gait_jax.models.remat`).
  """
  layers: Sequence[int] = (1, 4, 4, 2)
  channels: Sequence[int] = (64, 128)
  embed_dim: int = 256
  heads: Sequence[int] = (16, 32)
  window: Sequence[int] = (3, 3, 5)
  patch: Sequence[int] = (1, 2, 2)
  resize: Sequence[int] = (30, 20)
  drop_path_rate: float = 0.1
  num_classes: int = 3000
  hidden_dim: int = 256
  bin_num: Sequence[int] = (15,)
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  def _check(self, sils: Array) -> None:
    if len(self.layers) != 4 or len(self.channels) != 2:
      raise ValueError(f'SwinGait needs 4 layers and 2 channels, got '
                       f'{tuple(self.layers)} and {tuple(self.channels)}.')
    if sils.ndim != 4:
      raise ValueError(f'SwinGait takes silhouettes [n, s, h, w], got shape '
                       f'{tuple(sils.shape)}.')

  def _stem(self, x: Array, train: bool, mask: Optional[Array]) -> Array:
    """DeepGaitV2's layer0-2: `[n, s, h, w, 1]` -> `[n, s, h/2, w/2, C1]`."""
    shared = dict(axis_name=self.axis_name, dtype=self.dtype, ops=self.ops,
                  conv_kernel_grad=self.conv_kernel_grad)
    c0, c1 = self.channels
    stem = remat_lib.wrap(deepgaitv2.FrameConvBN, self.remat,
                          static_argnums=(2,))
    x = stem(features=c0, name='layer0', **shared)(x, train, mask)
    fmask = None if mask is None else mask.reshape(-1)
    stage1 = backbones.ResLayer(c0, self.layers[0], 1, c0, name='layer1',
                                remat=self.remat, **shared)
    x = layers.frame_wise(lambda z: stage1(z, train, fmask), x)
    return deepgaitv2.SequenceStage(
        block='p3d', features=c1, blocks=self.layers[1], stride=2,
        in_features=c0, remat=self.remat, name='layer2',
        **shared)(x, train, mask)

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds and classifies silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1] (OpenGait: 64x64).
      mask: bool `[n, s]`, True for real frames (first), or None (all real).
      train: BatchNorm uses (and updates) batch statistics of real frames;
        stochastic depth with a 'dropout' rng.

    Returns:
      'embeddings' `[n, p, hidden]` (the FCs output), 'bnneck_embeddings'
      (normalised BNNeck features, same shape) and 'logits'
      `[n, num_classes, p]`, all float32, `p = sum(bin_num)`.

    Raises:
      ValueError: bad layers/channels lengths or input rank.
    """
    self._check(sils)
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    x = self._stem(x, train, mask)  # [n, s, h / 2, w / 2, C1]
    x = resize_bilinear(x, self.resize)  # [n, s, 30, 20, C1]
    lengths = None if mask is None else jnp.sum(mask, axis=1).astype(
        jnp.int32)  # [n]
    x = swin3d.SwinTransformer3D(
        patch=tuple(self.patch), embed_dim=self.embed_dim,
        depths=tuple(self.layers[2:]), heads=tuple(self.heads),
        window=tuple(self.window), downsample=(1, 0),
        drop_path_rate=self.drop_path_rate, dtype=self.dtype,
        remat=self.remat, name='transformer')(x, train, lengths)
    # x: [n, s, 15, 10, 2 * embed_dim]
    x = layers.masked_max(x, mask)  # [n, 15, 10, c]
    feat = layers.horizontal_pyramid(x, self.bin_num)  # [n, p, c]
    # OpenGait appends the last part again, detached, and drops it after.
    feat = jnp.concatenate(
        [feat, jax.lax.stop_gradient(feat[:, -1:])], axis=1)  # [n, p + 1, c]
    out = baseline._head(  # pylint: disable=protected-access
        feat, self.hidden_dim, self.num_classes, train, self.axis_name,
        self.dtype)
    return {'embeddings': out['embeddings'][:, :-1],
            'bnneck_embeddings': out['bnneck_embeddings'][:, :-1],
            'logits': out['logits'][..., :-1]}
