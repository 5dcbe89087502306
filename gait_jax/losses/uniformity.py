"""Term 2 of GIL: uniformity of the class centres on the hypersphere.

For each part k, with ê = e/||e||, the centre of class a is
μ_a = mean_{i: y_i = a} ê_i, normalised to μ̂_a, and

  L_k = log( 1/(P(P-1)) Σ_{a≠b} exp(-t ||μ̂_a - μ̂_b||²) )

over the P classes of the batch (a log-sum-exp, minimised by spreading the
centres over the sphere; range [-4t, 0]). ``over='samples'`` applies the same
formula to the normalised samples of every inter-class pair. The loss is the
mean of L_k over parts. This is the project's definition of the paper's
class-level term (Wang & Isola's uniformity loss applied to class centres).

Centres are segment means over the labels, which `_common.Batch` keeps
sorted: with ``samples_per_class=K`` the batch is n/K blocks of K columns (a
reshape and a mean); without it there are up to n segments (a segment sum;
empty segments are masked out).

Sharding: every device builds all centres from the all-gathered batch but
weights row a of the class-pair matrix by the fraction of class a's samples
that it holds; these shares add up to 1 over the devices, so the ``psum``'d
sums (taken before the log) are the single-device ones, and so is the
gradient that flows back through the all-gathered centres.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

from gait_jax.losses import _common

Array = jax.Array

OVER_CHOICES = ('centers', 'samples')


class Centers(NamedTuple):
  """Normalised class centres of the global batch."""
  mu: Array  # [p, S, c] normalised centres (zeros for empty segments).
  present: Array  # [S] bool, the segment holds a class.
  local_share: Array  # [S] fraction of the segment's samples held locally.
  row_segment: Array  # [na] int32, the segment of each local anchor.


def class_centers(u_all: Array, batch: _common.Batch) -> Centers:
  """Class centres of the normalised global batch `u_all` [p, n, c]."""
  n = batch.n
  k = batch.samples_per_class
  num_segments = n // k if k else n
  y = batch.y_all  # [n], sorted
  new_class = jnp.concatenate(
      [jnp.zeros((1,), jnp.int32), (y[1:] != y[:-1]).astype(jnp.int32)])
  segment = jnp.cumsum(new_class)  # [n]
  if k:
    # The sorted P×K batch is P blocks of K columns: a reshape and a mean.
    sums = jnp.sum(u_all.reshape(u_all.shape[0], num_segments, k, -1),
                   axis=2)  # [p, S, c]
    count = jnp.full((num_segments,), k, jnp.float32)
  else:
    sums = jnp.swapaxes(jax.ops.segment_sum(
        jnp.swapaxes(u_all, 0, 1), segment, num_segments), 0, 1)  # [p, S, c]
    count = jax.ops.segment_sum(jnp.ones((n,), jnp.float32), segment,
                                num_segments)  # [S]
  mu = _common.l2_normalize(sums / jnp.maximum(count, 1.0)[:, None])
  row_segment = segment[batch.self_col]  # [na]
  local = jax.ops.segment_sum(jnp.ones((batch.n_loc,), jnp.float32),
                              row_segment, num_segments)  # [S]
  return Centers(mu, count > 0, local / jnp.maximum(count, 1.0), row_segment)


def _log_mean_exp(logits: Array, weights: Array, axis_name: str | None,
                  axis: tuple[int, ...]) -> Array:
  """log(Σ w·exp(x) / Σ w) per part over `axis`, summed across devices.

  Args:
    logits: [p, ...] values x.
    weights: broadcastable non-negative weights; 0 drops an entry.
    axis_name: mesh axis of the sharded rows, or None.
    axis: the axes summed over.

  Returns:
    [p] float32; 0 for a part with no positive weight.
  """
  keep = weights > 0
  local_max = jnp.max(jnp.where(keep, logits, -jnp.inf), axis=axis)  # [p]
  shift = _common.pmax(local_max, axis_name)  # [p]
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
  expand = shift.reshape(shift.shape + (1,) * (logits.ndim - 1))
  terms = jnp.exp(jnp.where(keep, logits - expand, -jnp.inf))
  total = _common.psum(jnp.sum(weights * terms, axis=axis), axis_name)  # [p]
  norm = _common.psum(jnp.sum(jnp.broadcast_to(weights, logits.shape),
                              axis=axis), axis_name)  # [p]
  has = norm > 0
  return jnp.where(
      has,
      shift + jnp.log(jnp.where(has, total, 1.0))
      - jnp.log(jnp.where(has, norm, 1.0)), 0.0)


def uniformity_from_batch(batch: _common.Batch, t: float,
                          over: str) -> Array:
  """Per-part uniformity [p] of a prepared batch (see `uniformity_loss`)."""
  u_all = _common.l2_normalize(batch.e_all)  # [p, n, c]
  if over == 'samples':
    u_loc = _common.l2_normalize(batch.e_loc)  # [p, na, c]
    sq = _common.sq_distances(u_loc, u_all)  # [p, na, n]
    weights = (~batch.match).astype(jnp.float32)  # [na, n]
    return _log_mean_exp(-t * sq, weights[None], batch.axis_name, (1, 2))
  # Every device takes all class pairs, weighted by the share of each row
  # class that it holds; the shares of all devices add up to 1.
  centers = class_centers(u_all, batch)
  sq = _common.sq_distances(centers.mu, centers.mu)  # [p, S, S]
  present = centers.present
  other = (~jnp.eye(present.shape[0], dtype=bool)) & present[None, :]
  weights = other * centers.local_share[:, None]  # [S, S]
  per_part = _log_mean_exp(-t * sq, weights[None], batch.axis_name, (1, 2))
  if batch.samples_per_class:
    # A batch that is not P×K with this K has more classes than segments.
    per_part = jnp.where(batch.pk_ok, per_part, jnp.nan)
  return per_part


def uniformity_loss(embeddings: Any, labels: Any, *, t: float = 2.0,
                    over: str = 'centers',
                    samples_per_class: int | None = None,
                    axis_name: str | None = None
                    ) -> tuple[Array, dict[str, Array]]:
  """Uniformity of the class centres (or inter-class samples) per part.

  Args:
    embeddings: [n, parts, channels] (the local shard under `axis_name`).
    labels: [n] integer identities.
    t: temperature of the Gaussian potential exp(-t ||x - y||²).
    over: 'centers' (class centres, Term 2) or 'samples' (every inter-class
      pair of normalised samples).
    samples_per_class: static K of a P×K batch: the centres are then block
      means of the label-sorted batch (labels that break the structure give
      a NaN loss). None accepts any labels (a segment sum over up to n
      classes).
    axis_name: mesh axis when called inside `jax.shard_map`; the result is
      then the loss of the global batch.

  Returns:
    (loss, aux): the mean over parts, and aux with 'per_part' [p]. A part
    whose batch holds a single class contributes 0.
  """
  _common.check_choice('over', over, OVER_CHOICES)
  batch = _common.make_batch(embeddings, labels, samples_per_class, axis_name)
  per_part = uniformity_from_batch(batch, float(t), over)  # [p]
  return jnp.mean(per_part), {'per_part': per_part}


def adaptive_margins(batch: _common.Batch, margin: float) -> Array:
  """Term 3's class-adaptive margin of every local anchor [p, na].

  Per part, δ_a = min_{b≠a} ||μ̂_a - μ̂_b|| is each class's distance to its
  nearest other class centre, δ̄ = mean_a δ_a, and
  m_a = m0 · clip(δ̄ / (δ_a + 1e-6), 0.5, 2). Classes crowded by a neighbour
  get up to twice the base margin, isolated ones half. No gradient flows
  through the margins. With a single class in the batch every margin is m0.

  Args:
    batch: the prepared batch.
    margin: the base margin m0.

  Returns:
    [p, na] float32 margins of the local anchors.
  """
  u_all = _common.l2_normalize(lax.stop_gradient(batch.e_all))
  centers = class_centers(u_all, batch)
  dist = _common.safe_sqrt(
      _common.sq_distances(centers.mu, centers.mu))  # [p, S, S]
  num_segments = centers.mu.shape[1]
  present = centers.present
  other = (~jnp.eye(num_segments, dtype=bool)) & present[None, :] & (
      present[:, None])  # [S, S]
  nearest = jnp.min(jnp.where(other[None], dist, jnp.inf), axis=2)  # [p, S]
  num_classes = jnp.sum(present)
  mean_nearest = jnp.sum(jnp.where(present[None], nearest, 0.0),
                         axis=1) / jnp.maximum(num_classes, 1)  # [p]
  ratio = jnp.clip(mean_nearest[:, None] / (nearest + 1e-6), 0.5, 2.0)
  ratio = jnp.where(num_classes > 1, ratio, 1.0)  # [p, S]
  margins = margin * ratio
  return jnp.take(margins, centers.row_segment, axis=1)  # [p, na]
