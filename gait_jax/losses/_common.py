"""Shared pieces of the metric losses: input checks, distances, P×K gathers.

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

from typing import Any, Callable, NamedTuple, Sequence

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


class Batch(NamedTuple):
  """A batch seen from one device: its anchors and the global batch."""
  e_loc: Array  # [p, na, c] float32, this device's anchors, part-major.
  e_all: Array  # [p, n, c] float32, the global batch, part-major.
  y_loc: Array  # [na] int32.
  y_all: Array  # [n] int32.
  offset: Any  # Global index of the first local anchor (int or traced).
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
  e_all = all_gather(e_loc.swapaxes(0, 1), axis_name).swapaxes(0, 1)
  y_all = all_gather(labels, axis_name)
  offset = 0 if axis_name is None else lax.axis_index(axis_name) * n_loc
  return Batch(e_loc, e_all, labels, y_all, offset, samples_per_class,
               axis_name)


def l2_normalize(x: Array, eps: float = 1e-12) -> Array:
  """x / max(||x||, eps) over the last axis, with a finite gradient at 0."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * lax.rsqrt(jnp.maximum(sq, eps * eps))


def sq_distances(a: Array, b: Array) -> Array:
  """Squared Euclidean distances, clamped at 0: [p, i, c], [p, j, c] -> [p, i, j]."""
  a2 = jnp.sum(a * a, axis=-1)[:, :, None]  # [p, i, 1]
  b2 = jnp.sum(b * b, axis=-1)[:, None, :]  # [p, 1, j]
  ab = jnp.einsum('pic,pjc->pij', a, b)  # [p, i, j]
  return jnp.maximum(a2 + b2 - 2.0 * ab, 0.0)


def safe_sqrt(x: Array) -> Array:
  """sqrt for x >= 0 whose gradient at 0 is 0 instead of inf/NaN."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def self_mask(batch: Batch) -> Array:
  """[na, n] True where the column is the anchor itself (same batch slot)."""
  rows = batch.offset + jnp.arange(batch.n_loc)
  return rows[:, None] == jnp.arange(batch.n)[None, :]


def distances(batch: Batch) -> Array:
  """Euclidean distances of the local anchors to the global batch [p, na, n].

  The distance of an anchor to itself is exactly 0: the expanded formula
  leaves rounding noise of order sqrt(eps)·||e|| there, which would otherwise
  enter every (a, a, m) triplet.
  """
  d = safe_sqrt(sq_distances(batch.e_loc, batch.e_all))  # [p, na, n]
  return jnp.where(self_mask(batch)[None], 0.0, d)


def label_match(batch: Batch) -> Array:
  """[na, n] True where anchor and column share the label."""
  return batch.y_loc[:, None] == batch.y_all[None, :]


def pk_indices(match: Array, k: int) -> tuple[Array, Array, Array]:
  """Column indices of each anchor's K positives and n-K negatives.

  Args:
    match: [na, n] bool label-match matrix.
    k: the static number of samples per class.

  Returns:
    pos [na, K] and neg [na, n-K] int32 column indices (ascending), and a
    scalar bool that is True when every anchor has exactly K positives.
  """
  order = jnp.argsort(jnp.logical_not(match).astype(jnp.int32), axis=1,
                      stable=True)  # [na, n], positives first
  ok = jnp.all(jnp.sum(match, axis=1) == k)
  return order[:, :k], order[:, k:], ok


def take_columns(x: Array, idx: Array) -> Array:
  """Per-row column gather: [p, na, n], [na, m] -> [p, na, m]."""
  return jnp.take_along_axis(x, idx[None], axis=2)


def pk_ok(ok_local: Array, axis_name: str | None) -> Array:
  """True when the P×K structure holds on every device."""
  bad = psum(jnp.logical_not(ok_local).astype(jnp.int32), axis_name)
  return bad == 0


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
