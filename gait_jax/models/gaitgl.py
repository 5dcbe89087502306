"""GaitGL: global and local 3-D convolutions with local temporal aggregation.

Lin et al., "Gait Recognition via Effective Global-Local Feature
Representation and Local Temporal Aggregation", ICCV 2021. Submodule names
follow OpenGait's state-dict keys. Sequences are `[n, t, h, w, c]`.
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

VARIANTS = {
    'casia_b': dict(structure='casia_b', channels=(32, 64, 128),
                    num_classes=74),
    'oumvlp': dict(structure='oumvlp', channels=(32, 64, 128, 256),
                   num_classes=5153),
    'tiny': dict(structure='casia_b', channels=(4, 8, 8), num_classes=8),
}
_STRUCTURES = {'casia_b': 3, 'oumvlp': 4}  # -> number of channels


class GLConv(nn.Module):
  """Global 3-D conv plus the same conv applied to horizontal strips.

  Attributes:
    features: output channels.
    halving: strips of `h // 2**halving` rows for the local branch.
    fm_sign: concatenate global and local maps along the height (doubling
      it) instead of adding them.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  halving: int
  fm_sign: bool = False
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    """Maps `[n, t, h, w, c]` to `[n, t, h or 2h, w, features]`.

    Args:
      x: feature maps.
      mask: bool `[n, t]` or None; padded frames are zeroed first, so they act
        as the convolutions' zero padding.

    Returns:
      Feature maps.
    """
    def conv(name):
      return layers.BasicConv(self.features, (3, 3, 3), padding=1,
                              leaf_name='conv3d', dtype=self.dtype,
                              ops=self.ops,
                              conv_kernel_grad=self.conv_kernel_grad,
                              name=name)
    x = layers.zero_padding(x, mask)
    gob = conv('global_conv3d')(x)
    local = conv('local_conv3d')
    if self.halving == 0:
      lcl = local(x)
    else:
      lcl = layers.apply_on_strips(local, x, x.shape[2] // 2**self.halving,
                                   axis=2)
    if self.fm_sign:
      return layers.leaky_relu(jnp.concatenate([gob, lcl], axis=2))
    return layers.leaky_relu(gob) + layers.leaky_relu(lcl)


class GLStage(nn.Module):
  """GLConvs in sequence, named '0', '1', ... (OUMVLP structure); `remat`
  rematerialises each (`gait_jax.models.remat`)."""
  features: Sequence[int]
  halving: int
  fm_sign_last: bool = False
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    last = len(self.features) - 1
    glconv = remat_lib.wrap(GLConv, self.remat)
    for i, f in enumerate(self.features):
      x = glconv(f, self.halving, self.fm_sign_last and i == last,
                 self.dtype, ops=self.ops,
                 conv_kernel_grad=self.conv_kernel_grad,
                 name=str(i))(x, mask)
    return x


class Conv3dStack(nn.Module):
  """BasicConv3d + LeakyReLU pairs named '0', '2', ... (padded frames zeroed).

  Attributes:
    features: output channels of every convolution.
    num_convs: number of convolutions.
    kernel_size: 3-D kernel.
    strides: 3-D strides.
    padding: 3-D symmetric padding.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  num_convs: int = 1
  kernel_size: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  padding: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    for i in range(self.num_convs):
      x = layers.zero_padding(x, mask)
      x = layers.BasicConv(self.features, self.kernel_size, self.strides,
                           self.padding, leaf_name='conv3d',
                           dtype=self.dtype, ops=self.ops,
                           conv_kernel_grad=self.conv_kernel_grad,
                           name=str(2 * i))(x)
      x = layers.leaky_relu(x)
    return x


class LTA(nn.Module):
  """Local temporal aggregation: stride-3 temporal conv + LeakyReLU.

  The convolution has kernel = stride = (3, 1, 1) and no padding. Parameter
  path `LTA/0/conv3d/kernel` `[3, 1, 1, c, c]` as in OpenGait.

  Attributes:
    features: output channels.
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
  """
  features: int
  dtype: Any = jnp.float32
  ops: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, s, h, w, c]` to `[n, s // 3, h, w, features]`."""
    x = layers.BasicConv(self.features, (3, 1, 1), strides=(3, 1, 1),
                         leaf_name='conv3d', dtype=self.dtype, ops=self.ops,
                         name='0')(x)
    return layers.leaky_relu(x)


def repeat_short_sequences(x: Array, mask: Optional[Array]
                           ) -> tuple[Array, Optional[Array]]:
  """Repeats sequences shorter than 3 frames (1 frame x3, 2 frames x2).

  Args:
    x: `[n, s, ...]`, valid frames first.
    mask: bool `[n, s]` or None (all frames real).

  Returns:
    `(x, mask)`: without a mask the whole batch is tiled when s < 3; with one
    every short sequence is tiled in place (the frame axis grows to at least
    4 so that a 2-frame sequence fits).
  """
  s = x.shape[1]
  if mask is None:
    if s < 3:
      x = jnp.tile(x, (1, 3 if s == 1 else 2) + (1,) * (x.ndim - 2))
    return x, None
  lengths = jnp.sum(mask.astype(jnp.int32), axis=1)  # [n]
  reps = jnp.where(lengths == 1, 3, jnp.where(lengths == 2, 2, 1))
  t = jnp.arange(max(s, 4))
  src = t[None, :] % jnp.maximum(lengths, 1)[:, None]  # [n, s']
  x = jnp.take_along_axis(x, layers.expand_mask(src, x.ndim), axis=1)
  return x, t[None, :] < (lengths * reps)[:, None]


class GaitGL(nn.Module):
  """GaitGL with its original BN head (embedding = BN features).

  Attributes:
    structure: 'casia_b' (one GLConv per stage, halving 3) or 'oumvlp' (two
      GLConvs per stage, halving 1, and a second stem convolution).
    channels: stage channels (3 for 'casia_b', 4 for 'oumvlp').
    num_classes: classifier classes.
    bin_num: GeM pooling bins.
    axis_name: BatchNorm reduction axis (None on one device).
    dtype: compute dtype; parameters stay float32, outputs are float32.
    ops: 'auto', 'reference' or 'cpu': which implementation of the
      convolutions and pools runs (see `gait_jax.models.ops`).
    conv_kernel_grad: 'auto', 'taps' or 'xla': the kernel gradient of the
      CPU-tuned 2-D convolutions (see `gait_jax.models.cpu_ops`).
    remat: 'none', 'blocks' or 'dots_saveable': rematerialise the stem, the
      LTA and each GLConv in training (see `gait_jax.models.remat`).
  """
  structure: str = 'casia_b'
  channels: Sequence[int] = (32, 64, 128)
  num_classes: int = 74
  bin_num: Sequence[int] = (64,)
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
      'embeddings' `[n, p, c]` (after BatchNorm), 'pre_bn_embeddings'
      `[n, p, c]` and 'logits' `[n, num_classes, p]`, all float32.
    """
    if self.structure not in _STRUCTURES:
      raise ValueError(f'Unknown GaitGL structure {self.structure!r}; valid: '
                       f'{", ".join(_STRUCTURES)}.')
    if len(self.channels) != _STRUCTURES[self.structure]:
      raise ValueError(f'GaitGL structure {self.structure!r} needs '
                       f'{_STRUCTURES[self.structure]} channels, got '
                       f'{tuple(self.channels)}.')
    dt = self.dtype
    choice = dict(ops=self.ops, conv_kernel_grad=self.conv_kernel_grad)
    x, mask = repeat_short_sequences(sils.astype(dt)[..., None], mask)
    # x: [n, s, h, w, 1]
    c0 = self.channels[0]
    deep = self.structure == 'oumvlp'
    wrap = lambda cls: remat_lib.wrap(cls, self.remat)
    x = wrap(Conv3dStack)(c0, 2 if deep else 1, dtype=dt, name='conv3d',
                          **choice)(x, mask)
    x = wrap(LTA)(c0, dtype=dt, ops=self.ops, name='LTA')(x)
    # x: [n, s // 3, h, w, c0]
    if mask is not None:
      lengths = jnp.sum(mask.astype(jnp.int32), axis=1)
      mask = jnp.arange(x.shape[1])[None, :] < (lengths // 3)[:, None]
    if deep:
      _, c1, c2, c3 = self.channels
      stage = functools.partial(GLStage, halving=1, dtype=dt,
                                remat=self.remat, **choice)
      x = stage((c1, c1), name='GLConvA0')(x, mask)
      x = ops_lib.max_pool_2x2(x, ops=self.ops)
      x = stage((c2, c2), name='GLConvA1')(x, mask)
      x = stage((c3, c3), fm_sign_last=True, name='GLConvB2')(x, mask)
    else:
      _, c1, c2 = self.channels
      glconv = wrap(GLConv)
      x = glconv(c1, 3, dtype=dt, name='GLConvA0', **choice)(x, mask)
      x = ops_lib.max_pool_2x2(x, ops=self.ops)
      x = glconv(c2, 3, dtype=dt, name='GLConvA1', **choice)(x, mask)
      x = glconv(c2, 3, fm_sign=True, dtype=dt, name='GLConvB2',
                 **choice)(x, mask)
    # x: [n, t, 2 * h / 2, w / 2, c]
    x = layers.masked_max(x, mask)  # [n, h, w / 2, c]
    feat = layers.GeMHPP(self.bin_num, name='HPP')(x)  # [n, p, c]
    c = feat.shape[-1]
    gait = layers.SeparateFCs(feat.shape[1], c, dtype=dt,
                              name='Head0')(feat)  # [n, p, c]
    bnft = layers.BatchNorm(axis_name=self.axis_name, dtype=dt,
                            name='Bn')(gait, train)  # [n, p, c]
    logits = layers.SeparateFCs(feat.shape[1], self.num_classes, dtype=dt,
                                name='Head1')(bnft)  # [n, p, classes]
    return {
        'embeddings': bnft.astype(jnp.float32),
        'pre_bn_embeddings': gait.astype(jnp.float32),
        'logits': jnp.swapaxes(logits, 1, 2).astype(jnp.float32),
    }
