"""Shared scoring rules: single-view gallery and cross-view gallery.

* `single_view_gallery` (OpenGait's ``single_view_gallery_evaluation``, the
  standard rank-1 tables): for every probe view v1 and gallery view v2 the
  probes of view v1 are matched against the gallery sequences of view v2
  only; each cell's rank-1 is rounded to two decimals and the per-view number
  is the row mean without the identical view. A probe whose subject has no
  gallery sequence in view v2 is a miss in that cell (OpenGait's rule) unless
  ``remove_no_gallery`` leaves it out.
* `cross_view_gallery` (OpenGait's ``cross_view_gallery_evaluation``, rank-1
  and mAP): the gallery holds every view; for each probe the gallery items of
  the same subject *and* the same view are removed. A probe with no true
  match left is a miss for rank-1 and skipped for mAP (OpenGait's
  ``compute_ACC_mAP``); ``remove_no_gallery`` skips it for rank-1 too. Per
  view values are rounded to two decimals, then averaged over the views.

Both rules use the sorted unique views of the test set and count, per probe
set, the probes that could not be matched (`results.ProbeCounts`). The
single-view building blocks, `single_view_accuracy` (rank-1..K cells from
one block-wise pass over the union of the probe sets) and
`single_view_result`, also serve CASIA-E, SUSTech1K (rank-5) and CCPG's
gait-style scores; the rank-list rule (Gait3D, CCPG ReID) is ``rank_list``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from gait_jax.evaluation import ranking
from gait_jax.evaluation import retrieval
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProbeCounts
from gait_jax.evaluation.protocols.results import ProbeSetResult
from gait_jax.evaluation.protocols.results import ProtocolResult


def _block_fn(data: EvalSet, prb: np.ndarray, gal: np.ndarray, metric: str,
              backend: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """(probe idx, gallery idx) -> [len(pi), len(gi)] distances of a set."""

  def block(pi, gi):
    return retrieval.part_distance(data.embeddings[prb[pi]],
                                   data.embeddings[gal[gi]], metric,
                                   backend=backend)

  return block


def _split(proto: Protocol, data: EvalSet, views: list[str]):
  """Gallery indices and {set name: probe indices} (probes of `views`)."""
  gal = np.flatnonzero(np.isin(data.types, proto.gallery_types))
  in_views = np.isin(data.views, views)
  probes = {name: np.flatnonzero(np.isin(data.types, types) & in_views)
            for name, types in proto.probe_sets.items()}
  return gal, probes


def single_view_counts(probe_labels: np.ndarray, probe_views: np.ndarray,
                       gallery_labels: np.ndarray, gallery_views: np.ndarray,
                       views: list[str], removed: bool) -> ProbeCounts:
  """Unmatched probes of a single-view-gallery probe set.

  Args:
    probe_labels: [m] subjects.
    probe_views: [m] views.
    gallery_labels: [g] subjects.
    gallery_views: [g] views.
    views: the V views of the table.
    removed: whether ``remove_no_gallery`` leaves them out.

  Returns:
    The counts (`ProbeCounts.no_gallery_pairs` over the off-diagonal cells
    whose gallery view is not empty).
  """
  subjects, codes = np.unique(
      np.concatenate([probe_labels, gallery_labels]), return_inverse=True)
  p_code, g_code = codes[:probe_labels.size], codes[probe_labels.size:]
  view_pos = {v: i for i, v in enumerate(views)}
  g_view = np.array([view_pos.get(v, -1) for v in gallery_views.tolist()],
                    np.int64)
  known = g_view >= 0
  present = np.zeros((subjects.size, len(views)), bool)  # [S, V]
  present[g_code[known], g_view[known]] = True
  p_view = np.array([view_pos[v] for v in probe_views.tolist()], np.int64)
  lacks = ~present[p_code]  # [m, V]
  lacks &= present.any(0)[None, :]  # Empty gallery views give NaN cells.
  lacks[np.arange(p_view.size), p_view] = False  # Identical view excluded.
  return ProbeCounts(
      probes=int(probe_labels.size),
      no_gallery=int(np.sum(~np.isin(probe_labels, gallery_labels))),
      no_gallery_pairs=int(lacks.sum()), removed=removed)


def single_view_accuracy(data: EvalSet, probes: Mapping[str, np.ndarray],
                         gal: np.ndarray, views: Sequence[str], *,
                         metric: str, backend: str, num_rank: int = 1,
                         remove_no_gallery: bool = False,
                         view_of: np.ndarray | None = None
                         ) -> dict[str, np.ndarray]:
  """Rank-k accuracy per (probe view, gallery view) cell of probe sets.

  The distances of the union of the probe sets to the gallery are computed
  once, in blocks of probes (`ranking.distance_blocks`); each cell's rank-k
  is round(#hits * 100 / #probes, 2) (OpenGait's per-cell rounding).

  Args:
    data: the embedded test set.
    probes: probe set name -> rows of its probes (views in ``views``).
    gal: rows of the gallery.
    views: the V views of the table.
    metric: distance metric.
    backend: distance backend.
    num_rank: K, the ranks 1..K computed.
    remove_no_gallery: leave out of a cell the probes whose subject has no
      gallery sequence in its gallery view (otherwise misses).
    view_of: [N] view of every test sequence; None: ``data.views``.

  Returns:
    name -> float64 [K, V, V] accuracies (%); NaN for a cell without probes
    or without gallery sequences.
  """
  view_of = data.views if view_of is None else view_of
  view_pos = {v: i for i, v in enumerate(views)}
  gal = gal[np.isin(view_of[gal], list(views))]
  g_view = np.array([view_pos[v] for v in view_of[gal].tolist()], np.int64)
  every = np.unique(np.concatenate([np.asarray(p, np.int64)
                                    for p in probes.values()] + [[]]))
  every = every.astype(np.int64)
  p_code, g_code = ranking.label_codes(data.subjects[every],
                                       data.subjects[gal])
  blocks = ranking.distance_blocks(data.embeddings, every, gal, metric,
                                   backend)
  ranks = ranking.view_first_ranks(blocks, p_code, g_code, g_view,
                                   len(views))  # [m, V]
  empty = np.bincount(g_view, minlength=len(views)) == 0  # [V]
  p_view = np.array([view_pos[v] for v in view_of[every].tolist()], np.int64)
  out = {}
  for name, prb in probes.items():
    rows = np.searchsorted(every, prb)
    acc = np.full((num_rank, len(views), len(views)), np.nan)
    for i in range(len(views)):
      r = ranks[rows[p_view[rows] == i]]  # [m_i, V]
      for k in range(num_rank):
        acc[k, i] = ranking.cell_accuracy(r, k + 1, remove_no_gallery, empty)
    out[name] = acc
  return out


def single_view_gallery(proto: Protocol, data: EvalSet, *, metric: str,
                        backend: str,
                        remove_no_gallery: bool = False) -> ProtocolResult:
  """Rank-1 per (probe view, gallery view) cell; see the module docstring.

  Args:
    proto: the protocol (probe sets and gallery types).
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.
    remove_no_gallery: leave out of a cell the probes whose subject has no
      gallery sequence in its gallery view.

  Returns:
    One `ProbeSetResult` with a [V, V] matrix per probe set.
  """
  views = sorted(set(data.views.tolist()))
  gal, probes = _split(proto, data, views)
  return single_view_result(proto, data, views, gal, probes, metric=metric,
                            backend=backend,
                            remove_no_gallery=remove_no_gallery)


def single_view_result(proto: Protocol, data: EvalSet, views: list[str],
                       gal: np.ndarray, probes: Mapping[str, np.ndarray], *,
                       metric: str, backend: str, num_rank: int = 1,
                       remove_no_gallery: bool = False) -> ProtocolResult:
  """`ProtocolResult` of a single-view-gallery table: per probe set the
  rank-1 per probe view without the identical view and its mean, the
  [V, V] rank-1 matrix and, for ``num_rank`` > 1, '<name>/R<k>' means of
  rank-k (see `single_view_accuracy` for the arguments)."""
  subj, view = data.subjects, data.views
  accs = single_view_accuracy(data, probes, gal, views, metric=metric,
                              backend=backend, num_rank=num_rank,
                              remove_no_gallery=remove_no_gallery)
  results = {}
  for name, prb in probes.items():
    acc = accs[name]  # [K, V, V]
    per_view = retrieval.exclude_identical_view(acc[0])  # [V]
    extra = {f'{name}/R{k + 1}': float(np.mean(
        retrieval.exclude_identical_view(acc[k]))) for k in range(1, num_rank)}
    counts = single_view_counts(subj[prb], view[prb], subj[gal], view[gal],
                                views, remove_no_gallery)
    results[name] = ProbeSetResult(name, per_view, float(np.mean(per_view)),
                                   counts, matrix=acc[0], extra=extra)
  return ProtocolResult(proto.name, tuple(views), results, metric,
                        description='rank-1 (%), identical view excluded')


def cross_view_gallery(proto: Protocol, data: EvalSet, *, metric: str,
                       backend: str,
                       remove_no_gallery: bool = False) -> ProtocolResult:
  """Rank-1 and mAP against a gallery of every view; see the module
  docstring.

  Args:
    proto: the protocol (probe sets and gallery types).
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.
    remove_no_gallery: skip probes with no true match for rank-1 too.

  Returns:
    One `ProbeSetResult` with per-view rank-1 and mAP per probe set.
  """
  views = sorted(set(data.views.tolist()))
  gal, probes = _split(proto, data, views)
  subj, view = data.subjects, data.views
  results = {}
  for name, prb in probes.items():
    hit, ap = retrieval.cross_view_rank1_ap(
        _block_fn(data, prb, gal, metric, backend), subj[prb], view[prb],
        subj[gal], view[gal])  # [m] each, NaN: no true match.
    no_match = np.isnan(hit)
    if not remove_no_gallery:
      hit = np.where(no_match, 0.0, hit)  # A miss for rank-1.
    r1 = retrieval.mean_per_view(hit, view[prb], views)  # [V]
    mp = retrieval.mean_per_view(ap, view[prb], views)  # [V]
    counts = ProbeCounts(
        probes=int(prb.size),
        no_gallery=int(np.sum(~np.isin(subj[prb], subj[gal]))),
        no_match=int(no_match.sum()), removed=remove_no_gallery)
    results[name] = ProbeSetResult(name, r1, float(np.mean(r1)), counts,
                                   map_per_view=mp,
                                   map_mean=float(np.mean(mp)))
  return ProtocolResult(
      proto.name, tuple(views), results, metric,
      description='rank-1 / mAP (%), cross-view gallery (same-view true '
      'matches excluded)')
