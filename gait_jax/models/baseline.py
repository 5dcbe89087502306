"""OpenGait's Baseline (Plain backbone) and GaitBase (ResNet9 backbone).

Both: frame-wise backbone, temporal max-pooling, horizontal pooling pyramid,
per-part FCs (the triplet/inference embedding) and a BNNeck classifier
(cosine logits). GaitBase is from Fan et al., "OpenGait: Revisiting Gait
Recognition Toward Better Practicality", CVPR 2023.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import backbones
from gait_jax.models import layers

Array = jax.Array

BASELINE_VARIANTS = {
    'casia_b': dict(
        layers_cfg=('BC-64', 'BC-64', 'M', 'BC-128', 'BC-128', 'M', 'BC-256',
                    'BC-256'),
        hidden_dim=256, num_classes=74),
    'oumvlp': dict(
        layers_cfg=('BC-32', 'BC-32', 'M', 'BC-64', 'BC-64', 'M', 'BC-128',
                    'BC-128', 'BC-256', 'BC-256'),
        hidden_dim=256, num_classes=5153),
    'tiny': dict(
        layers_cfg=('BC-4', 'BC-4', 'M', 'BC-8', 'BC-8', 'M', 'BC-16',
                    'BC-16'),
        hidden_dim=16, num_classes=8),
}

GAITBASE_VARIANTS = {
    'casia_b': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                    num_classes=74),
    'oumvlp': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                   num_classes=5153),
    'gait3d': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                   num_classes=3000),
    'grew': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                 num_classes=20000),
    'ccpg': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                 num_classes=100),
    'casia_e': dict(channels=(64, 128, 256, 512), hidden_dim=256,
                    num_classes=200),
    'tiny': dict(channels=(4, 8, 8, 16), hidden_dim=16, num_classes=8),
}


def _head(feat: Array, hidden_dim: int, num_classes: int, train: bool,
          axis_name: Optional[str], dtype: Any) -> dict[str, Array]:
  """FCs + BNNecks on pooled part features `[n, p, c]` (inside compact)."""
  p = feat.shape[1]
  embed_1 = layers.SeparateFCs(p, hidden_dim, dtype=dtype,
                               name='FCs')(feat)  # [n, p, hidden]
  embed_2, logits = layers.SeparateBNNecks(
      p, num_classes, axis_name=axis_name, dtype=dtype,
      name='BNNecks')(embed_1, train)  # [n, p, hidden], [n, p, classes]
  return {
      'embeddings': embed_1.astype(jnp.float32),
      'bnneck_embeddings': embed_2.astype(jnp.float32),
      'logits': jnp.swapaxes(logits, 1, 2).astype(jnp.float32),
  }


class Baseline(nn.Module):
  """Baseline with the Plain backbone.

  Attributes:
    layers_cfg: Plain backbone layers (see `backbones.Plain`).
    hidden_dim: embedding channels (FCs output, BNNeck input).
    num_classes: classifier classes.
    bin_num: horizontal pyramid bins.
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the backbone's
      blocks in training (see `gait_jax.models.remat`).
  """
  layers_cfg: Sequence[str] = BASELINE_VARIANTS['casia_b']['layers_cfg']
  hidden_dim: int = 256
  num_classes: int = 74
  bin_num: Sequence[int] = (16, 8, 4, 2, 1)
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds and classifies silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1].
      mask: bool `[n, s]`, True for real frames, or None (all real).
      train: BatchNorm uses (and updates) batch statistics.

    Returns:
      'embeddings' `[n, p, hidden_dim]`, 'bnneck_embeddings' (normalised
      BNNeck features, same shape) and 'logits' `[n, num_classes, p]`.
    """
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    backbone = backbones.Plain(self.layers_cfg, dtype=self.dtype,
                               ops=self.ops,
                               conv_kernel_grad=self.conv_kernel_grad,
                               remat=self.remat, name='Backbone')
    x = layers.frame_wise(backbone, x)  # [n, s, h', w', c]
    x = layers.masked_max(x, mask)  # [n, h', w', c]
    feat = layers.horizontal_pyramid(x, self.bin_num)  # [n, p, c]
    return _head(feat, self.hidden_dim, self.num_classes, train,
                 self.axis_name, self.dtype)


class GaitBase(nn.Module):
  """GaitBase: Baseline head on a ResNet9 backbone.

  Attributes:
    channels: ResNet9 stage channels.
    layers: ResNet9 blocks per stage.
    strides: ResNet9 stage strides.
    hidden_dim: embedding channels (FCs output, BNNeck input).
    num_classes: classifier classes.
    bin_num: horizontal pyramid bins.
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the backbone's
      blocks in training (see `gait_jax.models.remat`).
  """
  channels: Sequence[int] = (64, 128, 256, 512)
  layers: Sequence[int] = (1, 1, 1, 1)
  strides: Sequence[int] = (1, 2, 2, 1)
  hidden_dim: int = 256
  num_classes: int = 74
  bin_num: Sequence[int] = (16,)
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds and classifies silhouette sequences (see `Baseline`).

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1].
      mask: bool `[n, s]`, True for real frames, or None (all real). In
        training, padded frames are left out of the backbone's BatchNorm
        statistics.
      train: BatchNorm uses (and updates) batch statistics.

    Returns:
      As `Baseline`.
    """
    n, s = sils.shape[:2]
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    backbone = backbones.ResNet9(self.channels, self.layers, self.strides,
                                 axis_name=self.axis_name, dtype=self.dtype,
                                 ops=self.ops,
                                 conv_kernel_grad=self.conv_kernel_grad,
                                 remat=self.remat, name='Backbone')
    frame_mask = None if mask is None else mask.reshape(n * s)
    x = layers.frame_wise(lambda z: backbone(z, train, frame_mask), x)
    x = layers.masked_max(x, mask)  # [n, h', w', c]
    feat = layers.horizontal_pyramid(x, self.bin_num)  # [n, p, c]
    return _head(feat, self.hidden_dim, self.num_classes, train,
                 self.axis_name, self.dtype)
