"""GaitPart: focal convolutions and a micro-motion temporal aggregator.

Fan et al., "GaitPart: Temporal Part-based Model for Gait Recognition",
CVPR 2020. Submodule names follow OpenGait's state-dict keys.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import backbones
from gait_jax.models import layers
from gait_jax.models import ops as ops_lib

Array = jax.Array

VARIANTS = {
    'casia_b': dict(
        layers_cfg=('BC-32', 'BC-32', 'M', 'FC-64-2', 'FC-64-2', 'M',
                    'FC-128-3', 'FC-128-3'),
        hidden_dim=128),
    'oumvlp': dict(
        layers_cfg=('BC-32', 'BC-32', 'M', 'BC-64', 'BC-64', 'M', 'FC-128-3',
                    'FC-128-3', 'FC-256-3', 'FC-256-3'),
        hidden_dim=256),
    'tiny': dict(
        layers_cfg=('BC-4', 'BC-4', 'M', 'FC-8-2', 'FC-8-2', 'M', 'FC-16-3',
                    'FC-16-3'),
        hidden_dim=16),
}


def _shift_windows(x: Array, k: int, fill: float) -> Array:
  """Stacks the k temporal neighbours of every frame.

  Args:
    x: `[n, s, ...]`.
    k: odd window size; the sequence is padded with `fill` by k // 2 frames.
    fill: padding value.

  Returns:
    `[n, s, k, ...]`, entry t, j = x[t + j - k // 2].
  """
  s, pad = x.shape[1], k // 2
  widths = [(0, 0), (pad, pad)] + [(0, 0)] * (x.ndim - 2)
  xp = jnp.pad(x, widths, constant_values=fill)
  return jnp.stack([xp[:, j:j + s] for j in range(k)], axis=2)


def temporal_avg_pool(x: Array, k: int) -> Array:
  """Stride-1 average pool over axis 1, zero padding counted (k // 2)."""
  return jnp.sum(_shift_windows(x, k, 0.0), axis=2) / k


def temporal_max_pool(x: Array, k: int) -> Array:
  """Stride-1 max pool over axis 1 with -inf padding (k // 2)."""
  return jnp.max(_shift_windows(x, k, -jnp.inf), axis=2)


class PartConv1d(nn.Module):
  """Bias-free temporal convolution with separate weights for every part.

  The kernel `[parts, k, in, out]` stacks OpenGait's per-part Conv1d clones.

  Attributes:
    features: output channels.
    kernel_size: odd temporal kernel size (zero padding k // 2).
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
  """
  features: int
  kernel_size: int
  dtype: Any = jnp.float32
  ops: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, s, p, c]` to `[n, s, p, features]`."""
    p, c = x.shape[2:]
    init = nn.initializers.xavier_uniform(in_axis=-2, out_axis=-1,
                                          batch_axis=(0,))
    kernel = self.param('kernel', init, (p, self.kernel_size, c,
                                         self.features), jnp.float32)
    return ops_lib.part_conv1d(x.astype(self.dtype),
                               kernel.astype(self.dtype), ops=self.ops)


class PartConvPair(nn.Module):
  """conv(k1) -> LeakyReLU -> conv(k2), per part; names '0' and '2'."""
  hidden: int
  features: int
  kernel_sizes: tuple[int, int]
  dtype: Any = jnp.float32
  ops: str = 'auto'

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array]) -> Array:
    h = PartConv1d(self.hidden, self.kernel_sizes[0], self.dtype,
                   ops=self.ops, name='0')(x)  # [n, s, p, hidden]
    h = layers.zero_padding(layers.leaky_relu(h), mask)
    return PartConv1d(self.features, self.kernel_sizes[1], self.dtype,
                      ops=self.ops, name='2')(h)  # [n, s, p, features]


class TemporalFeatureAggregator(nn.Module):
  """GaitPart's micro-motion capture module (MTB1 + MTB2) and max pooling.

  Attributes:
    squeeze: hidden channels = channels // squeeze.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
  """
  squeeze: int = 4
  dtype: Any = jnp.float32
  ops: str = 'auto'

  @staticmethod
  def _max(xm: Array, k: int, mask: Optional[Array]) -> Array:
    # Zero the padded frames' -inf maxima so no inf * 0 reaches a gradient.
    return layers.zero_padding(temporal_max_pool(xm, k), mask)

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    """Aggregates part features over time.

    Args:
      x: `[n, s, p, c]` per-frame part features.
      mask: bool `[n, s]` or None. Padded frames act exactly like the end of
        the sequence: zeros for the convolutions and average pools, -inf for
        the max pools.

    Returns:
      `[n, p, c]`.
    """
    c = x.shape[-1]
    hidden = c // self.squeeze
    xz = layers.zero_padding(x, mask)
    xm = x if mask is None else jnp.where(
        layers.expand_mask(mask, x.ndim), x, jnp.array(-jnp.inf, x.dtype))
    # MTB1: short-range scores times a 3-frame template.
    scores = jax.nn.sigmoid(PartConvPair(
        hidden, c, (3, 1), self.dtype, ops=self.ops,
        name='conv1d3x1')(xz, mask))
    feat = (temporal_avg_pool(xz, 3) + self._max(xm, 3, mask)) * scores
    # MTB2: longer-range scores times a 5-frame template.
    scores = jax.nn.sigmoid(PartConvPair(
        hidden, c, (3, 3), self.dtype, ops=self.ops,
        name='conv1d3x3')(xz, mask))
    feat = feat + (temporal_avg_pool(xz, 5) +
                   self._max(xm, 5, mask)) * scores  # [n, s, p, c]
    return layers.masked_max(feat, mask)  # [n, p, c]


class GaitPart(nn.Module):
  """GaitPart.

  Attributes:
    layers_cfg: Plain backbone layers (see `backbones.Plain`).
    hidden_dim: output channels of the per-part head.
    bin_num: horizontal bins per frame (parts).
    squeeze: TFA channel reduction.
    num_classes: unused (no classifier); accepted for the common contract.
    axis_name: unused (no BatchNorm); accepted for the common contract.
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the backbone's
      blocks in training (see `gait_jax.models.remat`).
  """
  layers_cfg: Sequence[str] = VARIANTS['casia_b']['layers_cfg']
  hidden_dim: int = 128
  bin_num: Sequence[int] = (16,)
  squeeze: int = 4
  num_classes: Optional[int] = None
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, sils: Array, mask: Optional[Array] = None,
               train: bool = False) -> dict[str, Array]:
    """Embeds silhouette sequences.

    Args:
      sils: `[n, s, h, w]` silhouettes in [0, 1].
      mask: bool `[n, s]`, True for real frames, or None (all real).
      train: unused (the model has no train-time behaviour).

    Returns:
      `{'embeddings': [n, parts, hidden_dim]}` in float32.
    """
    del train
    x = sils.astype(self.dtype)[..., None]  # [n, s, h, w, 1]
    backbone = backbones.Plain(self.layers_cfg, dtype=self.dtype,
                               ops=self.ops,
                               conv_kernel_grad=self.conv_kernel_grad,
                               remat=self.remat, name='Backbone')
    x = layers.frame_wise(backbone, x)  # [n, s, h', w', c]
    x = layers.horizontal_pyramid(x, self.bin_num)  # [n, s, p, c]
    x = TemporalFeatureAggregator(self.squeeze, self.dtype, ops=self.ops,
                                  name='TFA')(x, mask)  # [n, p, c]
    embs = layers.SeparateFCs(x.shape[1], self.hidden_dim, dtype=self.dtype,
                              name='Head')(x)  # [n, p, hidden_dim]
    return {'embeddings': embs.astype(jnp.float32)}
