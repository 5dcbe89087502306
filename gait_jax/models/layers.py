"""Building blocks shared by the gait models.

Layouts: a frame is NHWC; a batch of sequences is `[n, s, h, w, c]` with an
optional frame mask `[n, s]` (True = real frame, valid frames first); part
features are `[n, p, c]`.

Submodule names follow OpenGait's state-dict keys, so that a PyTorch key maps to
a Flax path by dropping the container segments `forward_block`, `feature` and
`pooling_func` (see `gait_jax.torch_compat`). Parameters are float32; the
compute dtype is the module attribute `dtype`. Convolutions and pools run
through `gait_jax.models.ops` with the module attributes `ops` and
`conv_kernel_grad`.
"""

import math
from typing import Any, Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import ops as ops_lib
from gait_jax.models.masking import expand_mask  # pylint: disable=unused-import
from gait_jax.models.masking import frame_wise  # pylint: disable=unused-import
from gait_jax.models.masking import masked_max  # pylint: disable=unused-import
from gait_jax.models.masking import zero_padding  # pylint: disable=unused-import

Array = jax.Array
Dtype = Any
IntOrSeq = Union[int, Sequence[int]]

# PyTorch's default LeakyReLU slope, used by every model except GaitBase.
NEGATIVE_SLOPE = 0.01

def leaky_relu(x: Array) -> Array:
  """LeakyReLU with PyTorch's default slope of 0.01."""
  return jax.nn.leaky_relu(x, NEGATIVE_SLOPE)


def fc_bin_init(key: Array, shape: Sequence[int],
                dtype: Dtype = jnp.float32) -> Array:
  """Xavier-uniform with PyTorch's fan rule for a 3-D `[P, Cin, Cout]` tensor.

  PyTorch treats dim 1 as inputs, dim 0 as outputs and the rest as receptive
  field, so fan_in = Cin * Cout and fan_out = P * Cout.

  Args:
    key: PRNG key.
    shape: `(parts, in_features, out_features)`.
    dtype: parameter dtype.

  Returns:
    The initialised tensor.
  """
  parts, cin, cout = shape
  bound = math.sqrt(6.0 / (cin * cout + parts * cout))
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def bn_scale_init(key: Array, shape: Sequence[int],
                  dtype: Dtype = jnp.float32) -> Array:
  """BatchNorm scale ~ N(1, 0.02), OpenGait's initialisation."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _ntuple(value: IntOrSeq, n: int) -> tuple[int, ...]:
  if isinstance(value, int):
    return (value,) * n
  value = tuple(value)
  if len(value) != n:
    raise ValueError(f'Expected {n} values, got {value}.')
  return value


def apply_on_strips(fn: Callable[[Array], Array], x: Array, rows: int,
                    axis: int) -> Array:
  """Applies `fn` independently to consecutive strips of `rows` rows.

  Each strip is processed as a separate batch element, so a padded convolution
  sees zero padding at every strip boundary (OpenGait's FocalConv / GLConv).

  Args:
    fn: function of an array whose leading axis is the batch.
    x: input; `axis` (> 0) is the height axis.
    rows: strip height; a last, shorter strip is allowed.
    axis: the height axis of `x`.

  Returns:
    The strip outputs concatenated back along `axis`.
  """
  height = x.shape[axis]
  if rows <= 0:
    raise ValueError(f'Strip height must be positive, got {rows}.')
  if height % rows:
    splits = list(range(rows, height, rows))
    return jnp.concatenate(
        [fn(z) for z in jnp.split(x, splits, axis=axis)], axis=axis)
  k = height // rows
  batch = x.shape[0]
  z = x.reshape(x.shape[:axis] + (k, rows) + x.shape[axis + 1:])
  z = jnp.moveaxis(z, axis, 1)  # [b, k, ..., rows, ...]
  z = z.reshape((batch * k,) + z.shape[2:])
  y = fn(z)  # [b * k, ..., rows', ...]
  y = y.reshape((batch, k) + y.shape[1:])
  y = jnp.moveaxis(y, 1, axis)  # [b, ..., k, rows', ...]
  return y.reshape(y.shape[:axis] + (k * y.shape[axis + 1],) +
                   y.shape[axis + 2:])


class BasicConv(nn.Module):
  """Bias-free N-D convolution wrapped like OpenGait's BasicConv{1,2,3}d.

  Attributes:
    features: output channels.
    kernel_size: kernel extent per spatial dim (its length sets N).
    strides: int or per-dim strides.
    padding: int or per-dim symmetric zero padding.
    leaf_name: name of the wrapped convolution (`conv`, or `conv3d` for 3-D).
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  kernel_size: Sequence[int]
  strides: IntOrSeq = 1
  padding: IntOrSeq = 0
  leaf_name: str = 'conv'
  dtype: Dtype = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    nd = len(self.kernel_size)
    return ops_lib.Conv(
        self.features, tuple(self.kernel_size), _ntuple(self.strides, nd),
        _ntuple(self.padding, nd), ops=self.ops,
        conv_kernel_grad=self.conv_kernel_grad, dtype=self.dtype,
        name=self.leaf_name)(x)


class FocalConv2d(nn.Module):
  """Convolution applied separately to horizontal strips (GaitPart).

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    halving: the height is cut into strips of `h // 2**halving` rows; 0 means
      a plain convolution.
    padding: symmetric zero padding (applied to every strip).
    dtype: compute dtype.
    ops: implementation choice (see `gait_jax.models.ops`).
    conv_kernel_grad: kernel gradient of CPU-tuned 2-D convolutions.
  """
  features: int
  kernel_size: int
  halving: int
  padding: int = 1
  dtype: Dtype = jnp.float32
  ops: str = 'auto'
  conv_kernel_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[N, h, w, c]` to `[N, h, w, features]`."""
    layer = ops_lib.Conv(self.features, (self.kernel_size,) * 2,
                         padding=(self.padding,) * 2, ops=self.ops,
                         conv_kernel_grad=self.conv_kernel_grad,
                         dtype=self.dtype, name='conv')
    if self.halving == 0:
      return layer(x)
    rows = x.shape[1] // 2**self.halving
    return apply_on_strips(layer, x, rows, axis=1)


def horizontal_pyramid(x: Array, bins: Sequence[int]) -> Array:
  """Horizontal pooling pyramid: mean + max over each bin of whole rows.

  Args:
    x: `[..., h, w, c]`; each of `b` bins covers `h / b` consecutive rows.
    bins: bin counts, e.g. (16, 8, 4, 2, 1); parts are ordered by bin count
      in this order, top to bottom within each.

  Returns:
    `[..., sum(bins), c]`.
  """
  lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
  feats = []
  for b in bins:
    z = x.reshape(lead + (b, (h // b) * w, c))  # [..., b, rows * w, c]
    feats.append(jnp.mean(z, axis=-2) + jnp.max(z, axis=-2))
  return jnp.concatenate(feats, axis=-2)


class GeMHPP(nn.Module):
  """Generalised-mean pooling over horizontal bins, with a learnable power.

  Attributes:
    bins: bin counts (GaitGL uses a single bin count of 64).
    p_init: initial power.
    eps: inputs are clamped to at least `eps` before the power.
  """
  bins: Sequence[int] = (64,)
  p_init: float = 6.5
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, h, w, c]` to `[n, sum(bins), c]` (computed in float32)."""
    p = self.param('p', nn.initializers.constant(self.p_init), (1,),
                   jnp.float32)
    x = x.astype(jnp.float32)
    n, h, w, c = x.shape
    feats = []
    for b in self.bins:
      z = x.reshape(n, b, (h // b) * w, c)  # [n, b, rows * w, c]
      # mean(z^p)^(1/p) in log space: (eps^p underflows to 0 in float32,
      # whose power 1/p would have an infinite gradient.)
      logz = jnp.log(jnp.maximum(z, self.eps))
      lse = jax.nn.logsumexp(p * logz, axis=2) - jnp.log(z.shape[2])
      feats.append(jnp.exp(lse / p))  # [n, b, c]
    return jnp.concatenate(feats, axis=1)


class SeparateFCs(nn.Module):
  """One bias-free linear map per part.

  Attributes:
    parts: number of parts P.
    features: output channels.
    norm: L2-normalise each weight column over the input channels.
    dtype: compute dtype.
  """
  parts: int
  features: int
  norm: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps `[n, P, Cin]` to `[n, P, features]`."""
    w = self.param('fc_bin', fc_bin_init,
                   (self.parts, x.shape[-1], self.features), jnp.float32)
    if self.norm:
      w = _l2_normalize(w, axis=1)
    return jnp.einsum('npc,pcd->npd', x.astype(self.dtype),
                      w.astype(self.dtype))


def _l2_normalize(x: Array, axis: int, eps: float = 1e-12) -> Array:
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


class BatchNorm(nn.Module):
  """BatchNorm with PyTorch semantics over all axes but the last.

  Training normalises with the biased batch variance and updates
  `running = (1 - momentum) * running + momentum * batch`, using the unbiased
  variance for `var`. With `axis_name` the statistics are those of the global
  batch across that mapped axis (OpenGait's SyncBatchNorm). An optional mask
  restricts the statistics to real frames.

  Attributes:
    momentum: PyTorch-style momentum (weight of the new batch statistic).
    epsilon: added to the variance.
    axis_name: mapped axis over which to reduce statistics, or None.
    dtype: output dtype.
  """
  momentum: float = 0.1
  epsilon: float = 1e-5
  axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False,
               mask: Optional[Array] = None) -> Array:
    """Normalises `x`.

    Args:
      x: `[..., c]`.
      train: use and update batch statistics.
      mask: optional bool array over leading axes of `x` (e.g. `[N]`);
        masked-out rows do not contribute to the statistics.

    Returns:
      Normalised `x` in `dtype`.
    """
    c = x.shape[-1]
    scale = self.param('scale', bn_scale_init, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean',
                            lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var',
                           lambda: jnp.ones((c,), jnp.float32))
    xf = x.astype(jnp.float32)
    if train:
      # Statistics over one flat row axis: XLA:CPU sums a reduction over
      # several axes (frames x H x W) in float32 with ~1e-4 relative error.
      rows = xf.reshape(-1, c)  # [r, c]
      if mask is None:
        weight = None
        count = jnp.asarray(rows.shape[0], jnp.float32)
      else:
        weight = jnp.broadcast_to(
            expand_mask(mask, x.ndim), x.shape[:-1] + (1,)).reshape(
                -1, 1).astype(jnp.float32)  # [r, 1]
        count = jnp.sum(weight)
      total = jnp.sum(rows if weight is None else rows * weight, axis=0)
      if self.axis_name is not None:
        total, count = jax.lax.psum((total, count), self.axis_name)
      mean = total / count  # [c]
      sq = jnp.square(rows - mean)  # [r, c]
      sq = jnp.sum(sq if weight is None else sq * weight, axis=0)
      if self.axis_name is not None:
        sq = jax.lax.psum(sq, self.axis_name)
      var = sq / count
      if not self.is_initializing():
        unbiased = sq / jnp.maximum(count - 1.0, 1.0)
        m = self.momentum
        ra_mean.value = (1.0 - m) * ra_mean.value + m * mean
        ra_var.value = (1.0 - m) * ra_var.value + m * unbiased
    else:
      mean, var = ra_mean.value, ra_var.value
    mul = scale * jax.lax.rsqrt(var + self.epsilon)
    return ((xf - mean) * mul + bias).astype(self.dtype)


class SeparateBNNecks(nn.Module):
  """BatchNorm over all part features, then per-part (cosine) classifiers.

  The BatchNorm runs over the flattened `[n, P * C]` features in part-major
  order (index `p * C + c`); `gait_jax.torch_compat` reorders OpenGait's
  channel-major vectors on conversion.

  Attributes:
    parts: number of parts P.
    num_classes: classes K.
    norm: cosine logits (L2-normalised features and weight columns).
    axis_name: BatchNorm reduction axis (see `BatchNorm`).
    dtype: compute dtype.
  """
  parts: int
  num_classes: int
  norm: bool = True
  axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> tuple[Array, Array]:
    """Maps `[n, P, C]` to `(features [n, P, C], logits [n, P, K])`."""
    n, p, c = x.shape
    w = self.param('fc_bin', fc_bin_init, (p, c, self.num_classes),
                   jnp.float32)
    feat = BatchNorm(axis_name=self.axis_name, dtype=jnp.float32,
                     name='bn1d')(x.reshape(n, p * c), train)
    feat = feat.reshape(n, p, c)
    if self.norm:
      feat = _l2_normalize(feat, axis=-1)
      w = _l2_normalize(w, axis=1)
    logits = jnp.einsum('npc,pck->npk', feat.astype(self.dtype),
                        w.astype(self.dtype))
    return feat, logits


def trunc_normal_init(std: float = 0.02, bound: float = 2.0):
  """timm's `trunc_normal_(std=std)`: N(0, std) cut at +-`bound` (absolute)."""

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.truncated_normal(key, -bound / std, bound / std,
                                             shape, dtype)
  return init


def drop_path(module: nn.Module, x: Array, rate: float,
              train: bool) -> Array:
  """Stochastic depth: zero a sample's residual branch with probability
  `rate`, scale the kept ones by 1 / (1 - rate). Only in training, and only
  when the apply call has a 'dropout' rng (the train step passes one)."""
  if not train or rate == 0.0 or not module.has_rng('dropout'):
    return x
  keep = jax.random.bernoulli(module.make_rng('dropout'), 1.0 - rate,
                              (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
