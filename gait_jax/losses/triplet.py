"""Terms 1 and 3 of GIL: batch-all triplet loss with pairwise weights.

Per part k, with Euclidean distances d_ij, every triplet (a, q, m) with
y_q = y_a (q = a included) and y_m ≠ y_a contributes

  ℓ_aqm = max(w_aq·d_aq - w_am·d_am + m_a, 0),

and L_k = Σ ℓ / (#{ℓ ≠ 0} + 1e-9) (0 when no ℓ is non-zero); the loss is the
mean of L_k over parts. Without pair weights (w ≡ 1) and with a fixed margin
this is OpenGait's TripletLoss. With ``pair_weight=True`` the weights are
those of the GIL authors' code: w_ij = stop_gradient(1 + r_ij / R) with
r_ij = (1 - cos(e_i, e_j))/2 + 0.01 and R the maximum of r over all pairs and
(``weight_norm='global'``) all parts of the global batch, or within each part
(``'per_part'``). ``margin_mode='class_adaptive'`` replaces the fixed margin
by Term 3's per-class margin (`uniformity.adaptive_margins`).

Memory and cost. With ``samples_per_class=K`` (a P×K batch) the batch is
sorted by label once (`_common.Batch`), so every anchor's K positives are
one block of columns: they are gathered as [p, n, K], and the negatives are
the whole row [p, n, n] with the positive columns set to +inf (inactive).
The triplets form a [p, n, K, n] block that is reduced without being stored.
A custom VJP reduces, in the same pass, how many active triplets each
(anchor, positive) and each (anchor, negative) pair is in; the gradient is
linear in those counts, so the backward pass is O(p·n²) and never revisits
the triplets. (Masking the K positive columns instead of gathering the n-K
negatives costs K/n more hinge work but avoids a per-anchor permutation of
the [p, n, n] distances and its scatter, which dominate on CPU.) With
``samples_per_class=None`` any label layout is accepted: positives and
negatives are masked inside [p, chunk, n, n] blocks over row chunks of the
anchors (`lax.map`), i.e. O(p·n³) compute and at most
``_common.MASKED_BLOCK_ELEMENTS`` elements per block.

Hardness exclusion (``hard_exclusion=True``, TrackletGait's
``triplet_HardEx``): per part, with μ and M the mean and maximum of all
anchor-positive distances of the global batch (self pairs, d = 0, included;
the pair-weighted distances when ``pair_weight``), every triplet with
d_aq ≥ μ + f·(M − μ) is zeroed before AvgNonZero (f = ``hard_exclusion_frac``,
TrackletGait 2/3). The hardest positive pair is always excluded. μ is
`psum`'d and M `pmax`'d over the devices, so the mask is the global one.

Sharding: see `_common`. R and the hardest-triplet statistics are `pmax`'d,
sums and counts `psum`'d, so value and gradient equal the single-device ones.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import lax
import jax.numpy as jnp

from gait_jax.losses import _common
from gait_jax.losses import uniformity

Array = jax.Array

MARGIN_MODES = ('fixed', 'class_adaptive')
WEIGHT_NORMS = ('global', 'per_part')


def _add_pairs(a, b):
  return a[0] + b[0], a[1] + b[1]


def _hinge_rows(ap: Array, an: Array, margin: Array
                ) -> tuple[Array, Array, Array]:
  """The [p, na, K, N] triplet block reduced without being stored.

  Returns:
    row_sum [p, na, K] (Σ_m of the active terms), pos_count [p, na, K] and
    neg_count [p, na, N] int32 (active triplets per positive / negative).
  """
  x = ap[..., :, None] - an[..., None, :] + margin[..., None, None]
  active = x > 0  # [p, na, K, N]
  # One variadic reduction gives the sum and the count in a single pass and
  # keeps XLA:CPU from materialising the block for a library reduction.
  row_sum, pos_count = lax.reduce(
      (jnp.where(active, x, 0.0), active.astype(jnp.int32)),
      (jnp.float32(0), jnp.int32(0)), _add_pairs, (3,))  # [p, na, K]
  neg_count = jnp.sum(active, axis=2, dtype=jnp.int32)  # [p, na, N]
  return row_sum, pos_count, neg_count


@jax.custom_vjp
def hinge_sum(ap: Array, an: Array, margin: Array) -> tuple[Array, Array]:
  """Sum and count of the active triplets max(ap - an + margin, 0) per part.

  Args:
    ap: [p, na, K] anchor-positive distances (-inf: not a positive).
    an: [p, na, N] anchor-negative distances (+inf: not a negative).
    margin: [p, na] margin of each anchor (treated as a constant: the VJP
      gives it no cotangent).

  Returns:
    (sum [p], count [p]) over all na·K·N triplets; count is float32.
  """
  total, count = _hinge_fwd(ap, an, margin)[0]
  return total, count


def _hinge_fwd(ap, an, margin):
  row_sum, pos_count, neg_count = _hinge_rows(ap, an, margin)
  total = jnp.sum(row_sum, axis=(1, 2))  # [p]
  count = jnp.sum(pos_count, axis=(1, 2)).astype(jnp.float32)  # [p]
  return (total, count), (pos_count, neg_count)


def _hinge_bwd(residuals, cotangents):
  pos_count, neg_count = residuals
  g = cotangents[0][:, None, None]  # [p, 1, 1]; counts have no gradient
  pos_grad = g * pos_count.astype(jnp.float32)  # [p, na, K]
  neg_grad = -g * neg_count.astype(jnp.float32)  # [p, na, N]
  # Margins never carry a gradient (fixed, or stop-gradient class margins).
  return pos_grad, neg_grad, None


hinge_sum.defvjp(_hinge_fwd, _hinge_bwd)


def _pair_weights(batch: _common.Batch, weight_norm: str) -> Array:
  """Stop-gradient pair weights 1 + r/R of the local rows [p, na, n]."""
  r = (1.0 - batch.cosines) / 2.0 + 0.01  # [p, na, n]
  r_max = _common.pmax(jnp.max(r, axis=(1, 2)), batch.axis_name)  # [p]
  if weight_norm == 'global':
    r_max = jnp.broadcast_to(jnp.max(r_max), r_max.shape)
  return 1.0 + r / r_max[:, None, None]


def pair_weights(embeddings: Any, *, weight_norm: str = 'global',
                 axis_name: str | None = None) -> Array:
  """The pair weights w = 1 + r/R of Term 1 (no gradient).

  Args:
    embeddings: [n, parts, channels] (the local shard under `axis_name`).
    weight_norm: 'global' (R over all parts and pairs) or 'per_part'.
    axis_name: mesh axis when called inside `jax.shard_map`.

  Returns:
    [parts, n_local, n_global] float32 weights of the local rows.
  """
  _common.check_choice('weight_norm', weight_norm, WEIGHT_NORMS)
  embeddings = jnp.asarray(embeddings)
  labels = jnp.zeros(embeddings.shape[:1], jnp.int32)
  batch = _common.make_batch(embeddings, labels, None, axis_name)
  return _pair_weights(batch, weight_norm)


def hardness_threshold(dw: Array, match: Array, frac: float,
                       axis_name: str | None) -> Array:
  """μ + frac·(M − μ) per part over all anchor-positive pairs [p].

  Args:
    dw: [p, na, n] distances of the local anchors to the global batch.
    match: [na, n] positive mask (the anchor itself included).
    frac: the fraction f.
    axis_name: mesh axis; μ and M are then those of the global batch.

  Returns:
    [p] thresholds (no gradient), at most M.
  """
  dw = lax.stop_gradient(dw)
  pos = match[None]  # [1, na, n]
  total = _common.psum(jnp.sum(jnp.where(pos, dw, 0.0), axis=(1, 2)),
                       axis_name)  # [p]
  count = _common.psum(jnp.sum(match, dtype=jnp.float32), axis_name)
  mean = total / jnp.maximum(count, 1.0)
  top = _common.pmax(jnp.max(jnp.where(pos, dw, -jnp.inf), axis=(1, 2)),
                     axis_name)  # [p]
  return jnp.minimum(mean + frac * (top - mean), top)


def _masked_hinge(dw: Array, match: Array, margins: Array, n: int,
                  keep: Array | None = None) -> tuple[Array, Array]:
  """`hinge_sum` over all (q, m) columns with label masks, in row chunks.

  `keep` [p, na, n] (optional) further restricts the positives.
  """
  pos = match[None] if keep is None else match[None] & keep
  ap = jnp.where(pos, dw, -jnp.inf)  # [p, na, n]
  an = jnp.where(match[None], jnp.inf, dw)  # [p, na, n]

  def chunk(ap_c, an_c, margin_c, valid):
    ap_c = jnp.where(valid[None, :, None], ap_c, -jnp.inf)  # [p, ch, n]
    return hinge_sum(ap_c, an_c, margin_c)

  return _common.masked_row_chunks(
      chunk, ((ap, 1), (an, 1), (margins, 1)), dw.shape[0], n, remat=False)


def triplet_from_batch(batch: _common.Batch, *, margin: float,
                       pair_weight: bool, weight_norm: str,
                       margin_mode: str, hard_exclusion: bool = False,
                       hard_exclusion_frac: float = 2.0 / 3.0
                       ) -> tuple[Array, dict[str, Array]]:
  """Triplet loss of a prepared batch (see `triplet_loss`)."""
  axis = batch.axis_name
  n, parts = batch.n, batch.parts
  d = batch.distances  # [p, na, n]
  if pair_weight:
    w = _pair_weights(batch, weight_norm)  # [p, na, n]
    dw = w * d
  else:
    w = jnp.ones_like(d)
    dw = d
  if margin_mode == 'class_adaptive':
    margins = uniformity.adaptive_margins(batch, margin)  # [p, na]
  else:
    margins = jnp.full((parts, batch.n_loc), margin, jnp.float32)
  match = batch.match  # [na, n]

  k = batch.samples_per_class
  thr = None
  if hard_exclusion:
    thr = hardness_threshold(dw, match, hard_exclusion_frac, axis)  # [p]
  if k is not None:
    ap, an = batch.split_pk(dw, jnp.inf)  # [p, na, K], [p, na, n]
    if thr is not None:  # Excluded positives take part in no triplet.
      ap = jnp.where(lax.stop_gradient(ap) >= thr[:, None, None], -jnp.inf,
                     ap)
    total, count = hinge_sum(ap, an, margins)
  else:
    keep = None if thr is None else lax.stop_gradient(dw) < thr[:, None, None]
    total, count = _masked_hinge(dw, match, margins, n, keep)
  total = _common.psum(total, axis)  # [p]
  count = _common.psum(count, axis)  # [p]
  per_part = jnp.where(count > 0, total / (count + 1e-9), 0.0)  # [p]
  loss = jnp.mean(per_part)
  if k is not None:
    # A batch that is not P×K with this K would gather the wrong columns.
    loss = jnp.where(batch.pk_ok, loss, jnp.nan)

  # Statistics (no gradient).
  dw_s, d_s, w_s = (lax.stop_gradient(x) for x in (dw, d, w))
  hardest = jnp.max(jnp.where(match[None], dw_s, -jnp.inf), axis=2) - jnp.min(
      jnp.where(match[None], jnp.inf, dw_s), axis=2) + margins  # [p, na]
  hard_loss = _common.pmax(jnp.max(jnp.maximum(hardest, 0.0), axis=1), axis)
  mean_dist = _common.psum(jnp.sum(d_s, axis=(1, 2)), axis) / (n * n)  # [p]
  mean_weight = _common.psum(jnp.sum(w_s), axis) / (parts * n * n)
  # Mean effective margin m_a + (w_aq-1)·d_aq - (w_am-1)·d_am over triplets.
  excess = (w_s - 1.0) * d_s  # [p, na, n]
  num_pos = jnp.sum(match, axis=1).astype(jnp.float32)  # [na]
  num_neg = n - num_pos
  pos_excess = jnp.sum(jnp.where(match[None], excess, 0.0), axis=2)  # [p, na]
  neg_excess = jnp.sum(excess, axis=2) - pos_excess  # [p, na]
  margin_sum = (lax.stop_gradient(margins) * num_pos * num_neg
                + num_neg * pos_excess - num_pos * neg_excess)  # [p, na]
  num_triplets = _common.psum(jnp.sum(num_pos * num_neg), axis)
  mean_margin = _common.psum(jnp.sum(margin_sum), axis) / jnp.maximum(
      parts * num_triplets, 1.0)
  aux = {
      'per_part': per_part,
      'nonzero': count.astype(jnp.int32),
      'hard_loss': hard_loss,
      'mean_dist': mean_dist,
      'mean_pair_weight': mean_weight,
      'mean_margin': mean_margin,
  }
  if thr is not None:
    aux['hardex_threshold'] = thr
  return loss, aux


def triplet_loss(embeddings: Any, labels: Any, *, margin: float = 0.2,
                 pair_weight: bool = False, weight_norm: str = 'global',
                 margin_mode: str = 'fixed',
                 hard_exclusion: bool = False,
                 hard_exclusion_frac: float = 2.0 / 3.0,
                 samples_per_class: int | None = None,
                 axis_name: str | None = None
                 ) -> tuple[Array, dict[str, Array]]:
  """Batch-all triplet loss, optionally pair-weighted (GIL Term 1 and 3).

  Args:
    embeddings: [n, parts, channels] (the local shard under `axis_name`).
    labels: [n] integer identities.
    margin: the margin m (the base margin m0 in 'class_adaptive' mode).
    pair_weight: scale every distance by the GIL pair weight 1 + r/R.
    weight_norm: R over all parts ('global') or within each part
      ('per_part').
    margin_mode: 'fixed' or 'class_adaptive' (Term 3).
    hard_exclusion: zero the triplets whose anchor-positive distance is at
      least μ + hard_exclusion_frac·(M − μ) (TrackletGait's HardEx).
    hard_exclusion_frac: the fraction f in [0, 1].
    samples_per_class: static K of a P×K batch (every identity exactly K
      times; duplicates of a sequence count as distinct samples). Selects the
      fast gather path; labels that break the structure give a NaN loss. None
      accepts any labels (masked path, O(p·n³) compute).
    axis_name: mesh axis when called inside `jax.shard_map`; the result is
      then the loss of the global batch.

  Returns:
    (loss, aux): the mean over parts of the per-part losses, and aux with
    'per_part' [p], 'nonzero' [p] int32 counts of non-zero triplets,
    'hard_loss' [p] (largest triplet term), 'mean_dist' [p] (mean unweighted
    distance over all pairs), 'mean_pair_weight' and 'mean_margin' (the mean
    effective margin m_a + (w_aq - 1)·d_aq - (w_am - 1)·d_am over all
    triplets and parts); with hard_exclusion also 'hardex_threshold' [p].
  """
  _common.check_choice('weight_norm', weight_norm, WEIGHT_NORMS)
  _common.check_choice('margin_mode', margin_mode, MARGIN_MODES)
  check_hard_exclusion_frac(hard_exclusion_frac)
  batch = _common.make_batch(embeddings, labels, samples_per_class, axis_name)
  return triplet_from_batch(batch, margin=float(margin),
                            pair_weight=bool(pair_weight),
                            weight_norm=weight_norm, margin_mode=margin_mode,
                            hard_exclusion=bool(hard_exclusion),
                            hard_exclusion_frac=float(hard_exclusion_frac))


def check_hard_exclusion_frac(frac: Any,
                              name: str = 'hard_exclusion_frac') -> None:
  """Raises a ValueError naming `name` unless 0 <= frac <= 1."""
  if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not (
      0.0 <= frac <= 1.0):
    raise ValueError(f'{name}={frac!r} must be a number in [0, 1].')
