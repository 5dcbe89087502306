"""Shared pieces of the metric losses: input checks, distances, P×K blocks.

Every metric loss works on a *local* block of anchors against the *global*
batch. On one device the two are the same array. Inside ``jax.shard_map``
(``axis_name`` given) the local block is this device's shard of the batch and
the global batch is its tiled ``all_gather``; each device then computes only
the rows of its own anchors, and sums / counts / maxima are combined with
``psum`` / ``pmax``. Because the rows of different devices are disjoint
shares of one global sum, the transpose of ``all_gather`` (a reduce-scatter)
adds their gradients up to exactly the single-device gradient.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
from jax import lax
import jax.numpy as jnp

Array = jax.Array

# Row chunks of the masked (samples_per_class=None) paths are sized so that one
# chunk's [p, chunk, n, n] block has at most this many elements.
MASKED_BLOCK_ELEMENTS = 1 << 22


def check_choice(name: str, value: Any, valid: Sequence[Any]) -> None:
  """Raises a ValueError naming `name` unless `value` is one of `valid`."""
  if value not in valid:
    raise ValueError(
        f'{name}={value!r} is not valid; expected one of {list(valid)}.')


def axis_size(axis_name: str | None) -> int:
  """Number of devices along `axis_name` (1 without an axis)."""
  return 1 if axis_name is None else lax.axis_size(axis_name)


def psum(x: Any, axis_name: str | None) -> Any:
  """Sum over devices (identity without an axis)."""
  return x if axis_name is None else lax.psum(x, axis_name)


def pmax(x: Any, axis_name: str | None) -> Any:
  """Maximum over devices, without gradient (pmax has no derivative rule)."""
  x = lax.stop_gradient(x)
  return x if axis_name is None else lax.pmax(x, axis_name)


def all_gather(x: Array, axis_name: str | None) -> Array:
  """The global batch from the local shards (identity without an axis)."""
  return x if axis_name is None else lax.all_gather(x, axis_name, tiled=True)


def safe_sqrt(x: Array) -> Array:
  """sqrt for x >= 0 whose gradient at 0 is 0 instead of inf/NaN."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def l2_normalize(x: Array, eps: float = 1e-12) -> Array:
  """x / max(||x||, eps) over the last axis, with a finite gradient at 0."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * lax.rsqrt(jnp.maximum(sq, eps * eps))


def sq_distances(a: Array, b: Array) -> Array:
  """Squared distances clamped at 0: [p, i, c], [p, j, c] -> [p, i, j]."""
  a2 = jnp.sum(a * a, axis=-1)[:, :, None]  # [p, i, 1]
  b2 = jnp.sum(b * b, axis=-1)[:, None, :]  # [p, 1, j]
  ab = jnp.einsum('pic,pjc->pij', a, b)  # [p, i, j]
  return jnp.maximum(a2 + b2 - 2.0 * ab, 0.0)


@jax.custom_vjp
def _self_gram(e: Array) -> Array:
  """e @ e^T per part, [p, n, c] -> [p, n, n], with a one-matmul VJP."""
  return jnp.einsum('pic,pjc->pij', e, e)


def _self_gram_fwd(e):
  return _self_gram(e), e


def _self_gram_bwd(e, g):
  g = g + jnp.swapaxes(g, 1, 2)  # [p, n, n]
  return (jnp.einsum('pij,pjc->pic', g, e),)


_self_gram.defvjp(_self_gram_fwd, _self_gram_bwd)


@jax.custom_vjp
def _permute(x: Array, order: Array, inverse: Array) -> Array:
  """x[:, order] along axis 1, with the inverse permutation as its VJP.

  The VJP of a general gather is a scatter-add; for a permutation the
  gather by the inverse permutation gives the same result faster.
  """
  return jnp.take(x, order, axis=1)


def _permute_fwd(x, order, inverse):
  return _permute(x, order, inverse), inverse


def _permute_bwd(inverse, g):
  return (jnp.take(g, inverse, axis=1), None, None)


_permute.defvjp(_permute_fwd, _permute_bwd)


@dataclasses.dataclass(eq=False)
class Batch:
  """A batch seen from one device: its anchors and the global batch.

  The columns (the global batch) are sorted by label (stably), so that in a
  P×K batch the positives of every anchor are one block of K columns. On one
  device the anchors are the same sorted batch; inside ``shard_map`` they are
  this device's shard in its own order. The pairwise quantities shared by
  several terms (dot products, distances, label match) are computed once, on
  first use.
  """
  e_loc: Array  # [p, na, c] float32, this device's anchors, part-major.
  e_all: Array  # [p, n, c] float32, the global batch sorted by label.
  y_loc: Array  # [na] int32.
  y_all: Array  # [n] int32, sorted.
  self_col: Array  # [na] int32, the column of each anchor itself.
  samples_per_class: int | None
  axis_name: str | None

  @property
  def n(self) -> int:
    return self.e_all.shape[1]

  @property
  def n_loc(self) -> int:
    return self.e_loc.shape[1]

  @property
  def parts(self) -> int:
    return self.e_loc.shape[0]

  @functools.cached_property
  def gram(self) -> Array:
    """Dot products of the local anchors with the global batch [p, na, n]."""
    if self.axis_name is None:
      return _self_gram(self.e_loc)
    return jnp.einsum('pic,pjc->pij', self.e_loc, self.e_all)

  @functools.cached_property
  def sq_norms(self) -> tuple[Array, Array]:
    """Squared norms of the local anchors [p, na] and the batch [p, n]."""
    return (jnp.sum(self.e_loc * self.e_loc, axis=-1),
            jnp.sum(self.e_all * self.e_all, axis=-1))

  @functools.cached_property
  def distances(self) -> Array:
    """Euclidean distances of the local anchors to the batch [p, na, n].

    The distance of an anchor to itself is exactly 0: the expanded formula
    leaves rounding noise of order sqrt(eps)·||e|| there, which would
    otherwise enter every (a, a, m) triplet.
    """
    a2, b2 = self.sq_norms
    sq = jnp.maximum(a2[:, :, None] + b2[:, None, :] - 2.0 * self.gram, 0.0)
    return jnp.where(self.self_mask[None], 0.0, safe_sqrt(sq))

  @functools.cached_property
  def cosines(self) -> Array:
    """Cosine similarities [p, na, n] (no gradient), from the dot products."""
    a2, b2 = (lax.stop_gradient(x) for x in self.sq_norms)
    inv_a = lax.rsqrt(jnp.maximum(a2, 1e-24))[:, :, None]  # [p, na, 1]
    inv_b = lax.rsqrt(jnp.maximum(b2, 1e-24))[:, None, :]  # [p, 1, n]
    return lax.stop_gradient(self.gram) * inv_a * inv_b

  @functools.cached_property
  def self_mask(self) -> Array:
    """[na, n] True where the column is the anchor itself (same slot)."""
    return self.self_col[:, None] == jnp.arange(self.n)[None, :]

  @functools.cached_property
  def match(self) -> Array:
    """[na, n] True where anchor and column share the label."""
    return self.y_loc[:, None] == self.y_all[None, :]

  @functools.cached_property
  def pk_ok(self) -> Array:
    """True when every anchor of every device has exactly K positives."""
    wrong = jnp.sum(jnp.sum(self.match, axis=1) != self.samples_per_class)
    return psum(wrong, self.axis_name) == 0

  def split_pk(self, x: Array, fill: float) -> tuple[Array, Array]:
    """The K positive columns of each anchor and the masked negatives.

    Args:
      x: [p, na, n] pairwise values.
      fill: value put in the positive columns of the negatives.

    Returns:
      positives [p, na, K] (the anchor's class block of the sorted columns)
      and negatives [p, na, n]: x with the positive columns set to `fill`.
    """
    k = self.samples_per_class
    pos = _take_block(x, self.self_col // k, k)  # [p, na, K]
    return pos, jnp.where(self.match[None], fill, x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _take_block(x: Array, block: Array, k: int) -> Array:
  """Block `block[a]` of K columns of every row: [p, na, n] -> [p, na, K].

  Its VJP places the cotangent back with a broadcast select over the
  [p, na, n/K, K] view instead of the scatter-add of a general gather.
  """
  cols = block[:, None] * k + jnp.arange(k)[None, :]  # [na, K]
  return jnp.take_along_axis(x, cols[None], axis=2)


def _take_block_fwd(x, block, k):
  own = block[:, None] == jnp.arange(x.shape[2] // k)[None, :]  # [na, P]
  return _take_block(x, block, k), own


def _take_block_bwd(k, own, g):
  dx = jnp.where(own[None, :, :, None], g[:, :, None, :], 0.0)  # [p,na,P,K]
  return dx.reshape(g.shape[:2] + (own.shape[1] * k,)), None


_take_block.defvjp(_take_block_fwd, _take_block_bwd)


def check_labels(labels: Any, n: int, what: str) -> Array:
  """Checks that labels are an integer vector of length `n`."""
  labels = jnp.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(
        f'labels must have shape ({n},) to match {what}, got '
        f'{labels.shape}.')
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f'labels must be integers, got dtype {labels.dtype}.')
  return labels.astype(jnp.int32)


def check_samples_per_class(samples_per_class: Any, n: int) -> None:
  """Checks a static P×K class size against the global batch size `n`."""
  if samples_per_class is None:
    return
  k = samples_per_class
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(
        f'samples_per_class must be a positive Python int or None, got {k!r}.')
  if n % k:
    raise ValueError(
        f'samples_per_class={k} does not divide the global batch size n={n}.')


def make_batch(embeddings: Any, labels: Any, samples_per_class: int | None,
               axis_name: str | None) -> Batch:
  """Validates the inputs, casts to float32 and all-gathers when sharded."""
  embeddings = jnp.asarray(embeddings)
  if embeddings.ndim != 3:
    raise ValueError(
        'embeddings must have shape [n, parts, channels], got shape '
        f'{embeddings.shape}.')
  n_loc = embeddings.shape[0]
  labels = check_labels(labels, n_loc, f'embeddings of shape '
                        f'{embeddings.shape}')
  n = n_loc * axis_size(axis_name)
  check_samples_per_class(samples_per_class, n)
  e_loc = jnp.transpose(embeddings.astype(jnp.float32), (1, 0, 2))
  # Gathering the local tensor (not a copy) keeps the gradient paths explicit:
  # rows reach this device's shard directly, columns via the reduce-scatter.
  e_glob = all_gather(e_loc.swapaxes(0, 1), axis_name).swapaxes(0, 1)
  y_glob = all_gather(labels, axis_name)
  order = jnp.argsort(y_glob, stable=True)  # [n]
  inverse = jnp.zeros((n,), jnp.int32).at[order].set(
      jnp.arange(n, dtype=jnp.int32))  # [n]
  e_all = _permute(e_glob, order, inverse)  # [p, n, c]
  y_all = y_glob[order]
  if axis_name is None:
    e_loc, labels, self_col = e_all, y_all, jnp.arange(n, dtype=jnp.int32)
  else:
    offset = lax.axis_index(axis_name) * n_loc
    self_col = inverse[offset + jnp.arange(n_loc)]
  return Batch(e_loc, e_all, labels, y_all, self_col, samples_per_class,
               axis_name)


def stop_gradient_batch(batch: Batch) -> Batch:
  """The same batch with embeddings that carry no gradient."""
  return dataclasses.replace(batch, e_loc=lax.stop_gradient(batch.e_loc),
                             e_all=lax.stop_gradient(batch.e_all))


def masked_row_chunks(fn: Callable[..., tuple[Array, ...]],
                      row_args: Sequence[tuple[Array, int]], parts: int,
                      n: int, budget: int | None = None,
                      remat: bool = True) -> tuple[Array, ...]:
  """Sums `fn` over row chunks of the anchors with bounded memory.

  `fn(*chunk_args, valid)` gets the chunk of every array of `row_args` plus a
  [chunk] bool mask of real (not padding) rows, and returns a tuple of
  per-part sums. Chunks run under `lax.map`; with `remat` each chunk is
  wrapped in `jax.checkpoint`, so that the backward pass also holds only one
  [p, chunk, n, n] block at a time (functions whose own residuals are already
  small pass remat=False).

  Args:
    fn: per-chunk function returning a tuple of arrays summed over chunks.
    row_args: (array, row axis) pairs; every row axis has length na.
    parts: number of parts p.
    n: global batch size.
    budget: maximum elements of one [p, chunk, n, n] block (default
      MASKED_BLOCK_ELEMENTS).
    remat: recompute each chunk in the backward pass.

  Returns:
    The tuple of sums over all chunks.
  """
  if budget is None:
    budget = MASKED_BLOCK_ELEMENTS
  first, first_axis = row_args[0]
  na = first.shape[first_axis]
  chunk = max(1, min(na, budget // max(1, parts * n * n)))
  valid = jnp.ones((na,), bool)
  if chunk == na:
    return fn(*(x for x, _ in row_args), valid)
  num = -(-na // chunk)
  pad = num * chunk - na

  def split(x, ax):
    widths = [(0, 0)] * x.ndim
    widths[ax] = (0, pad)
    x = jnp.pad(x, widths)
    shape = x.shape[:ax] + (num, chunk) + x.shape[ax + 1:]
    return jnp.moveaxis(x.reshape(shape), ax, 0)  # [num, ..., chunk, ...]

  xs = [split(x, ax) for x, ax in row_args] + [split(valid, 0)]
  body = lambda a: fn(*a)
  outs = lax.map(jax.checkpoint(body) if remat else body, xs)
  return tuple(jnp.sum(o, axis=0) for o in outs)
