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
set, the probes that could not be matched (`results.ProbeCounts`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

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
  subj, view = data.subjects, data.views
  results = {}
  for name, prb in probes.items():
    acc = retrieval.single_view_gallery_rank1(
        _block_fn(data, prb, gal, metric, backend), subj[prb], view[prb],
        subj[gal], view[gal], views, remove_no_gallery=remove_no_gallery)
    per_view = retrieval.exclude_identical_view(acc)  # [V]
    counts = single_view_counts(subj[prb], view[prb], subj[gal], view[gal],
                                views, remove_no_gallery)
    results[name] = ProbeSetResult(name, per_view, float(np.mean(per_view)),
                                   counts, matrix=acc)
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
