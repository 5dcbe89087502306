"""The rank-list rule: CMC, mAP and mINP over each probe's ranked gallery.

OpenGait's ``evaluate_rank`` (Gait3D, copied from Gait3D-Benchmark) and
``evaluate_many`` (CCPG, ReID style): each probe ranks the whole gallery
(``evaluate_many`` first drops the gallery items of the probe's subject in
the probe's view); a probe without a true match is skipped for every metric
and counted (`results.ProbeCounts.no_match`). Over the other probes:

* rank-k = % of probes whose first true match is among the k nearest (the
  CMC curve, the cumulative match count clipped at 1);
* mAP = mean of AP, AP = mean over true matches of precision at the match;
* mINP = mean of INP = #true matches / (position of the last true match),
  on the cumulative match count that is not clipped (OpenGait ``853bb18``).

None of these is rounded. Distances and rankings are computed one block of
probes at a time (`ranking.distance_blocks`, `ranking.rank_list_block`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.results import ProbeCounts
from gait_jax.evaluation.protocols.results import ProbeSetResult


@dataclasses.dataclass(frozen=True)
class RankListScores:
  """Per-probe scores of the rank-list rule.

  Attributes:
    first: int64 [m] 0-based position of the first true match; -1: none.
    ap: float64 [m] average precision; NaN without a true match.
    inp: float64 [m] inverse negative penalty; NaN without a true match.
  """
  first: np.ndarray
  ap: np.ndarray
  inp: np.ndarray

  @property
  def valid(self) -> np.ndarray:
    """[m] bool: probes with a true match (the ones scored)."""
    return self.first >= 0

  def rank(self, k: int) -> float:
    """Rank-k accuracy (%) over the valid probes; NaN if there are none."""
    valid = self.valid
    if not valid.any():
      return float('nan')
    return float(np.mean(self.first[valid] < k) * 100.0)

  def mean_ap(self) -> float:
    """mAP (%) over the valid probes."""
    return _mean_pct(self.ap)

  def mean_inp(self) -> float:
    """mINP (%) over the valid probes."""
    return _mean_pct(self.inp)


def _mean_pct(x: np.ndarray) -> float:
  x = x[~np.isnan(x)]
  return float(np.mean(x) * 100.0) if x.size else float('nan')


def rank_list_scores(data: EvalSet, prb: np.ndarray, gal: np.ndarray, *,
                     metric: str, backend: str,
                     view_of: np.ndarray | None = None,
                     block_elements: int | None = None
                     ) -> RankListScores:
  """Scores each probe against the whole gallery.

  Args:
    data: the embedded test set.
    prb: [m] rows of the probes.
    gal: [g] rows of the gallery.
    metric: distance metric.
    backend: distance backend.
    view_of: [N] view of every test sequence: drop, for each probe, the
      gallery items of its subject in its view (``evaluate_many``); None:
      rank every gallery item (``evaluate_rank``).
    block_elements: distance entries per probe block (None: the default
      of `ranking.distance_blocks`).

  Returns:
    The per-probe scores, in ``prb`` order.
  """
  m = len(prb)
  first = np.full(m, -1, np.int64)
  ap, inp = np.full(m, np.nan), np.full(m, np.nan)
  p_code, g_code = ranking.label_codes(data.subjects[prb], data.subjects[gal])
  if view_of is not None:
    pv, gv = ranking.label_codes(view_of[prb], view_of[gal])
  for sl, dist in ranking.distance_blocks(data.embeddings, prb, gal, metric,
                                          backend,
                                          block_elements=block_elements):
    same = p_code[sl, None] == g_code[None, :]  # [b, g]
    keep = None
    if view_of is not None:
      keep = ~(same & (pv[sl, None] == gv[None, :]))
      same &= keep
    first[sl], ap[sl], inp[sl] = ranking.rank_list_block(dist, same, keep)
  return RankListScores(first, ap, inp)


def rank_list_counts(data: EvalSet, prb: np.ndarray, gal: np.ndarray,
                     scores: RankListScores, why: str) -> ProbeCounts:
  """Probe counts of a rank-list probe set.

  Args:
    data: the test set.
    prb: rows of the probes.
    gal: rows of the gallery.
    scores: their `RankListScores`.
    why: what "no true match" means here (e.g. 'in the gallery').

  Returns:
    `ProbeCounts` whose note says the unmatched probes are skipped.
  """
  return ProbeCounts(
      probes=int(len(prb)),
      no_gallery=int(np.sum(~np.isin(data.subjects[prb], data.subjects[gal]))),
      no_match=int(np.sum(~scores.valid)), removed=True,
      no_match_note=f'{why}: skipped for every metric (OpenGait rule)')


def rank_list_result(name: str, scores: RankListScores, counts: ProbeCounts,
                     ranks: Sequence[int] = (1, 5, 10), prefix: str = ''
                     ) -> ProbeSetResult:
  """One `ProbeSetResult`: the values in the column order rank-k..., mAP,
  mINP; summary keys '<prefix>rank-<k>', '<prefix>mAP', '<prefix>mINP'."""
  values = {f'{prefix}rank-{k}': scores.rank(k) for k in ranks}
  values[f'{prefix}mAP'] = scores.mean_ap()
  values[f'{prefix}mINP'] = scores.mean_inp()
  keys = list(values)
  return ProbeSetResult(name, np.array(list(values.values())),
                        values[keys[0]], counts, summary_name=keys[0],
                        extra={k: values[k] for k in keys[1:]})
