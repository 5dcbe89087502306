"""The Video-Swin 3-D transformer of OpenGait's SwinGait.

Liu et al., "Video Swin Transformer" (CVPR 2022), in the form OpenGait's
`modeling/models/swingait.py` ships: a `[1, 2, 2]` patch embedding with
LayerNorm, stages of Swin blocks attending within `(frames, h, w)` windows
(every second block with the windows shifted by half a window and OpenGait's
additive -100 region mask), a relative position bias per window offset,
pre-LayerNorm (eps 1e-5), exact-erf GELU MLPs, stochastic depth, and between
stages either nothing or OpenGait's channel-doubling `downsample`
(LayerNorm + bias-free Linear `C -> 2C` per token: the grid stays, only the
channels double). Features are `[n, d, h, w, c]` (channels last); the
window geometry and masks are in `gait_jax.models.swin_windows`.

Windows larger than the input shrink to it (with no shift along that axis);
the input is zero-padded (after `norm1`) to window multiples and the padded
tokens take part in attention, as in OpenGait.

Frame masks. Windows span frames, so padded frames would change the real
ones. Given a frame mask `[n, s]` (real frames first), every block
reproduces exactly what a sequence of length L gets alone: its frames past L
are zeroed after `norm1` (the zeros OpenGait pads with), keys past the
sequence's own padded length are masked out, and a sequence too short for a
temporal shift (L <= window frames) is not shifted in time. A padded batch
then equals single sequences up to float rounding.

Module names follow OpenGait's state-dict keys (`patch_embed.proj`,
`layers.{i}.blocks.{j}.attn.qkv`, `...norm1`, `...mlp.fc1`,
`layers.{i}.downsample.{0,1}`, `norm`), so the converter maps them with no
special rules; the containers `layers` and `blocks` stand for OpenGait's
`ModuleList`s.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.models import layers
from gait_jax.models import ops as ops_lib
from gait_jax.models import remat as remat_lib
from gait_jax.models.swin_windows import merge
from gait_jax.models.swin_windows import partition
from gait_jax.models.swin_windows import region_mask
from gait_jax.models.swin_windows import relative_position_index
from gait_jax.models.swin_windows import temporal_key_mask
from gait_jax.models.swin_windows import window_and_shift

Array = jax.Array
Dims = tuple[int, int, int]

# OpenGait's additive mask between tokens of different shifted regions.
REGION_MASK = -100.0
# Additive mask of keys a sequence would not have alone (exp underflows to 0).
_KEY_MASK = -1e9
LN_EPS = 1e-5  # PyTorch's LayerNorm default.


def _dense(features: int, dtype: Any, name: str,
           use_bias: bool = True) -> nn.Dense:
  """A Linear with OpenGait's SwinGait init (trunc-normal 0.02, bias 0)."""
  return nn.Dense(features, use_bias=use_bias, dtype=dtype,
                  param_dtype=jnp.float32,
                  kernel_init=layers.trunc_normal_init(), name=name)


def _norm(dtype: Any, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LN_EPS, dtype=dtype, param_dtype=jnp.float32,
                      name=name)


class WindowAttention3D(nn.Module):
  """Multi-head self-attention within windows, with relative position bias.

  Attributes:
    window: the full window `(wd, wh, ww)` (sizes the bias table).
    heads: attention heads.
    dtype: compute dtype (the softmax runs in float32).
  """
  window: Sequence[int]
  heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array]) -> Array:
    """Maps windows `[n, nW, N, c]` to `[n, nW, N, c]`.

    Args:
      x: tokens of each window.
      mask: additive float32 mask broadcasting to `[n, nW, 1, N, N]`, or None.
    """
    n, nw, tokens, c = x.shape
    hd = c // self.heads
    spans = [2 * w - 1 for w in self.window]
    table = self.param('relative_position_bias_table',
                       layers.trunc_normal_init(),
                       (int(np.prod(spans)), self.heads), jnp.float32)
    qkv = _dense(3 * c, self.dtype, 'qkv')(x)  # [n, nW, N, 3c]
    qkv = qkv.reshape(n, nw, tokens, 3, self.heads, hd)
    q, k, v = (qkv[:, :, :, i] for i in range(3))  # [n, nW, N, heads, hd]
    q = q * jnp.asarray(hd ** -0.5, q.dtype)
    attn = jnp.einsum('bwqhd,bwkhd->bwhqk', q, k).astype(jnp.float32)
    # OpenGait slices the full window's index to a shrunk window's N tokens.
    index = relative_position_index(self.window)[:tokens, :tokens]
    bias = table[index.reshape(-1)].reshape(tokens, tokens, self.heads)
    attn = attn + jnp.transpose(bias, (2, 0, 1))  # [n, nW, heads, N, N]
    if mask is not None:
      attn = attn + mask
    attn = jax.nn.softmax(attn, axis=-1).astype(self.dtype)
    y = jnp.einsum('bwhqk,bwkhd->bwqhd', attn, v).reshape(n, nw, tokens, c)
    return _dense(c, self.dtype, 'proj')(y)


class Mlp(nn.Module):
  """fc1 -> exact GELU -> fc2."""
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = _dense(self.hidden, self.dtype, 'fc1')(x)
    y = nn.gelu(y, approximate=False)
    return _dense(x.shape[-1], self.dtype, 'fc2')(y)


class SwinBlock3D(nn.Module):
  """Pre-norm (shifted-)window attention and MLP, each a residual branch.

  Attributes:
    heads: attention heads.
    window: window `(frames, h, w)`.
    shift: cyclic shift; (0, 0, 0) for a plain window block.
    mlp_ratio: MLP hidden channels / channels.
    drop_path: stochastic-depth rate of both branches.
    dtype: compute dtype.
  """
  heads: int
  window: Sequence[int]
  shift: Sequence[int] = (0, 0, 0)
  mlp_ratio: float = 4.0
  drop_path: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool,
               lengths: Optional[Array] = None) -> Array:
    """Maps `[n, D, H, W, c]` to the same shape.

    Args:
      x: tokens.
      train: stochastic depth (with a 'dropout' rng).
      lengths: int `[n]` real frames per sequence (see the module doc), or
        None (all frames real).
    """
    n, d, h, w, c = x.shape
    size = (d, h, w)
    window, shift = window_and_shift(size, self.window, self.shift)
    y = _norm(self.dtype, 'norm1')(x)
    if lengths is not None:  # OpenGait pads each sequence with zeros.
      real = jnp.arange(d)[None, :] < lengths[:, None]  # [n, D]
      y = jnp.where(real[:, :, None, None, None], y, jnp.zeros((), y.dtype))
    padded = tuple(-(-s // k) * k for s, k in zip(size, window))
    y = jnp.pad(y, [(0, 0)] + [(0, p - s) for p, s in zip(padded, size)] +
                [(0, 0)])  # [n, Dp, Hp, Wp, c]
    mask = None
    roll = jnp.full((n,), shift[0], jnp.int32)  # Temporal roll per sequence.
    if any(shift):
      if lengths is not None:
        # Sequences of <= wd frames get no temporal shift alone.
        roll = jnp.where(lengths > window[0], roll, 0)
      y = self._roll(y, shift, roll, -1)
      mask = jnp.where(region_mask(padded, window, shift), 0.0, REGION_MASK)
      mask = jnp.asarray(mask, jnp.float32)[None, :, None]  # [1, nW, 1, N, N]
    if lengths is not None:
      keys = temporal_key_mask(lengths, padded, window, roll)
      keys = jnp.where(keys, 0.0, _KEY_MASK)[:, :, None]  # [n, nW, 1, 1, N]
      mask = keys if mask is None else mask + keys
    attn = WindowAttention3D(self.window, self.heads, self.dtype, name='attn')
    y = merge(attn(partition(y, window), mask), window, padded)
    if any(shift):
      y = self._roll(y, shift, roll, 1)
    y = y[:, :d, :h, :w]  # [n, D, H, W, c]
    x = x + layers.drop_path(self, y, self.drop_path, train)
    y = Mlp(int(c * self.mlp_ratio), self.dtype, name='mlp')(
        _norm(self.dtype, 'norm2')(x))
    return x + layers.drop_path(self, y, self.drop_path, train)

  @staticmethod
  def _roll(y: Array, shift: Dims, roll: Array, sign: int) -> Array:
    """Cyclic shift by `sign * shift` (the temporal part per sequence)."""
    y = jnp.roll(y, (sign * shift[1], sign * shift[2]), axis=(2, 3))
    if not shift[0]:
      return y
    moved = jnp.roll(y, sign * shift[0], axis=1)
    return jnp.where((roll > 0)[:, None, None, None, None], moved, y)


class SwinBlocks(nn.Module):
  """A stage's blocks '0', '1', ... (shifted windows in the odd ones).

  Attributes:
    depth: number of blocks.
    heads: attention heads.
    window: window `(frames, h, w)`.
    drop_paths: stochastic-depth rate per block.
    mlp_ratio: MLP hidden channels / channels.
    dtype: compute dtype.
    remat: rematerialise each block (`gait_jax.models.remat`).
  """
  depth: int
  heads: int
  window: Sequence[int]
  drop_paths: Sequence[float]
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, x: Array, train: bool,
               lengths: Optional[Array] = None) -> Array:
    block = remat_lib.wrap(SwinBlock3D, self.remat, static_argnums=(2,))
    half = tuple(w // 2 for w in self.window)
    for j in range(self.depth):
      x = block(self.heads, tuple(self.window),
                (0, 0, 0) if j % 2 == 0 else half, self.mlp_ratio,
                self.drop_paths[j], self.dtype, name=str(j))(x, train,
                                                             lengths)
    return x


class _StageSettings(nn.Module):
  """The stages' fields (SwinGait's values as defaults).

  Attributes:
    depths: blocks per stage.
    heads: attention heads per stage.
    window: window `(frames, h, w)`.
    downsample: per stage, 1 (channel-doubling projection) or 0 (none);
      OpenGait's 2 (patch merging) is not used by SwinGait.
    drop_path_rate: stochastic depth rising linearly from 0 over all blocks.
    mlp_ratio: MLP hidden channels / channels.
    dtype: compute dtype.
    remat: rematerialise each block (`gait_jax.models.remat`).
  """
  depths: Sequence[int] = (4, 2)
  heads: Sequence[int] = (16, 32)
  window: Sequence[int] = (3, 3, 5)
  downsample: Sequence[int] = (1, 0)
  drop_path_rate: float = 0.1
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  remat: str = 'none'

  def stage_settings(self) -> dict[str, Any]:
    return {f: getattr(self, f) for f in _STAGE_FIELDS}


_STAGE_FIELDS = ('depths', 'heads', 'window', 'downsample', 'drop_path_rate',
                 'mlp_ratio', 'dtype', 'remat')


class SwinStages(_StageSettings):
  """OpenGait's `layers` ModuleList: stage i ('i') has `blocks` and, where
  `downsample[i]` is 1, a `downsample` (LayerNorm '0', Linear '1', C -> 2C).
  """

  @nn.compact
  def __call__(self, x: Array, train: bool,
               lengths: Optional[Array] = None) -> Array:
    rates = np.linspace(0.0, self.drop_path_rate, sum(self.depths))
    start = 0
    for i, depth in enumerate(self.depths):
      if self.downsample[i] not in (0, 1):
        raise ValueError(f'Unsupported Swin downsample {self.downsample[i]} '
                         f'(stage {i}); valid: 0 (none), 1 (C -> 2C).')
      stage = _Stage(depth, self.heads[i], tuple(self.window),
                     tuple(float(r) for r in rates[start:start + depth]),
                     bool(self.downsample[i]), self.mlp_ratio, self.dtype,
                     self.remat, name=str(i))
      x = stage(x, train, lengths)
      start += depth
    return x


class _Stage(nn.Module):
  """One entry of `layers`: `blocks`, then an optional `downsample`."""
  depth: int
  heads: int
  window: Sequence[int]
  drop_paths: Sequence[float]
  double: bool
  mlp_ratio: float
  dtype: Any
  remat: str

  @nn.compact
  def __call__(self, x: Array, train: bool,
               lengths: Optional[Array]) -> Array:
    x = SwinBlocks(self.depth, self.heads, self.window, self.drop_paths,
                   self.mlp_ratio, self.dtype, self.remat,
                   name='blocks')(x, train, lengths)
    if self.double:
      x = _ChannelDoubling(self.dtype, name='downsample')(x)
    return x


class _ChannelDoubling(nn.Module):
  """OpenGait's `downsample[i] == 1`: LayerNorm, then Linear C -> 2C."""
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = _norm(self.dtype, '0')(x)
    return _dense(2 * x.shape[-1], self.dtype, '1', use_bias=False)(y)


class PatchEmbed3D(nn.Module):
  """Non-overlapping patches (a Conv3d with kernel = stride = `patch`, bias)
  and a LayerNorm; inputs are zero-padded to patch multiples.

  Attributes:
    patch: patch `(frames, h, w)`.
    features: embedding channels.
    dtype: compute dtype.
  """
  patch: Sequence[int]
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, D, H, W, c]` to `[n, D/pd, H/ph, W/pw, features]`."""
    a, b, e = self.patch
    c = x.shape[-1]
    proj = _PatchProj(tuple(self.patch), self.features, self.dtype,
                      name='proj')
    pad = [(0, -s % k) for s, k in zip(x.shape[1:4], (a, b, e))]
    x = jnp.pad(x, [(0, 0)] + pad + [(0, 0)])
    n, d, h, w, _ = x.shape
    x = x.reshape(n, d // a, a, h // b, b, w // e, e, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # [n, d', h', w', a, b, e, c]
    y = proj(x)  # [n, d', h', w', features]
    return _norm(self.dtype, 'norm')(y)


class _PatchProj(nn.Module):
  """The patch Conv3d as a product with its `[*patch, c, features]` kernel."""
  patch: Sequence[int]
  features: int
  dtype: Any

  @nn.compact
  def __call__(self, patches: Array) -> Array:
    """Maps `[..., a, b, e, c]` patches to `[..., features]`."""
    kernel = self.param('kernel', ops_lib.conv_init,
                        tuple(self.patch) + (patches.shape[-1],
                                             self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,),
                      jnp.float32)
    y = jnp.einsum('...abec,abecf->...f', patches.astype(self.dtype),
                   kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


class SwinTransformer3D(_StageSettings):
  """OpenGait's `SwinTransformer3D` (as SwinGait builds it): the stage
  fields of `_StageSettings`, and

  Attributes:
    patch: patch `(frames, h, w)`.
    embed_dim: channels of stage 0 (stage i has `embed_dim * 2**i`).
  """
  patch: Sequence[int] = (1, 2, 2)
  embed_dim: int = 256

  @nn.compact
  def __call__(self, x: Array, train: bool,
               lengths: Optional[Array] = None) -> Array:
    """Maps `[n, D, H, W, c]` to `[n, D, H/2, W/2, c_out]` (patch [1, 2, 2]).

    Args:
      x: input features.
      train: stochastic depth (with a 'dropout' rng).
      lengths: int `[n]` real frames per sequence, or None (see the module
        doc; needs a temporal patch of 1).
    """
    if lengths is not None and self.patch[0] != 1:
      raise ValueError('Frame masks need a temporal patch size of 1, got '
                       f'{tuple(self.patch)}.')
    x = PatchEmbed3D(self.patch, self.embed_dim, self.dtype,
                     name='patch_embed')(x)
    x = SwinStages(**self.stage_settings(), name='layers')(x, train,
                                                           lengths)
    return _norm(self.dtype, 'norm')(x)
