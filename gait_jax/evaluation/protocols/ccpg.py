"""CCPG protocol (OpenGait ``evaluate_CCPG``).

Four probe/gallery pairs of sequence types (statuses):

  CL: probes U0_D0_BG, U0_D0 vs gallery U1_D1, U2_D2, U3_D3
  UP: probes U3_D3 vs gallery U0_D3
  DN: probes U1_D0 vs gallery U1_D1
  BG: probes U0_D0_BG vs gallery U0_D0

Views are normalised to the part before the first '_' (for both scores).

* Gait style (``CL``, ``CL/incl``, ...): for every (probe view, gallery
  view) cell, rank-1 of the probes of that view against the gallery of that
  view (``rules.single_view_accuracy``: a probe whose subject has no gallery
  sequence there is a miss), rounded to 2 decimals per cell; ``CL`` is the
  mean over probe views of the row mean without the identical view
  (de_diag), ``CL/incl`` the mean of all V x V cells. The [V, V] matrix is
  kept. A cell without probes or gallery is NaN (so is then ``/incl``).
* ReID style (``CL/reid-rank-1``, ``CL/reid-mAP``, ``CL/reid-mINP``): every
  probe against the whole gallery of its pair after dropping the gallery
  items of its subject in its view (``rank_list``, OpenGait
  ``evaluate_many``); probes without a true match skipped; not rounded.
"""

from __future__ import annotations

import numpy as np

from gait_jax.evaluation import retrieval
from gait_jax.evaluation.protocols import rank_list
from gait_jax.evaluation.protocols import rules
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProbeCounts
from gait_jax.evaluation.protocols.results import ProbeSetResult
from gait_jax.evaluation.protocols.results import ProtocolResult

PROBES = {'CL': ('U0_D0_BG', 'U0_D0'), 'UP': ('U3_D3',), 'DN': ('U1_D0',),
          'BG': ('U0_D0_BG',)}
GALLERIES = {'CL': ('U1_D1', 'U2_D2', 'U3_D3'), 'UP': ('U0_D3',),
             'DN': ('U1_D1',), 'BG': ('U0_D0',)}


def view_prefixes(views: np.ndarray) -> np.ndarray:
  """[N] each view's part before the first '_'."""
  return np.array([v.split('_')[0] for v in views.tolist()])


def ccpg_rule(proto: Protocol, data: EvalSet, *, metric: str,
              backend: str) -> ProtocolResult:
  """Gait-style and ReID-style scores of the four pairs.

  Args:
    proto: the protocol.
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.

  Returns:
    One `ProbeSetResult` per pair: per-view rank-1 without the identical
    view, the [V, V] matrix, and '/incl' and '/reid-*' extras.
  """
  view = view_prefixes(data.views)
  views = sorted(set(view.tolist()))
  subj = data.subjects
  results = {}
  for name, probe_types in PROBES.items():
    prb = np.flatnonzero(np.isin(data.types, probe_types))
    gal = np.flatnonzero(np.isin(data.types, GALLERIES[name]))
    acc = rules.single_view_accuracy(
        data, {name: prb}, gal, views, metric=metric, backend=backend,
        view_of=view)[name][0]  # [V, V] rank-1
    per_view = retrieval.exclude_identical_view(acc)  # [V]
    reid = rank_list.rank_list_scores(data, prb, gal, metric=metric,
                                      backend=backend, view_of=view)
    pairs = rules.single_view_counts(subj[prb], view[prb], subj[gal],
                                     view[gal], views, removed=False)
    counts = ProbeCounts(
        probes=pairs.probes, no_gallery=pairs.no_gallery,
        no_gallery_pairs=pairs.no_gallery_pairs,
        no_match=int(np.sum(~reid.valid)),
        no_match_note='after the same-view exclusion: skipped for the '
        'ReID scores')
    extra = {f'{name}/incl': float(np.mean(acc)),
             f'{name}/reid-rank-1': reid.rank(1),
             f'{name}/reid-mAP': reid.mean_ap(),
             f'{name}/reid-mINP': reid.mean_inp()}
    results[name] = ProbeSetResult(name, per_view, float(np.mean(per_view)),
                                   counts, matrix=acc, extra=extra)
  return ProtocolResult(
      proto.name, tuple(views), results, metric,
      description='gait-style rank-1 (%), identical view excluded; /incl '
      'included; reid-*: whole gallery without same-subject same-view items')


PROTOCOLS = (
    Protocol('ccpg', ccpg_rule, PROBES, tuple(sorted(
        {t for g in GALLERIES.values() for t in g})), family='ccpg'),
)
