"""GREW protocols (OpenGait ``evaluate_real_scene`` and ``GREW_submission``).

* ``grew``: the local proxy. Gallery = type ``01``, probes = type ``02``
  (type ``03`` unused); every probe against the whole gallery; acc_k =
  round(100 * #{probes whose subject is among the k nearest} / #probes, 2)
  for k = 1..20, probes without a gallery sequence of their subject counted
  as misses. OpenGait's maintainer calls it "different from the official
  evaluation protocol" (OpenGait issue #134), and the table says so.
* The official submission (`write_submission`, the protocol's ``outputs``):
  gallery = types ``01`` + ``02``, probes = type ``03`` (subject
  ``probe``, the view is the probe's sequence name); a CSV with header
  ``videoId,rank1,...,rank20`` and one row per probe, sorted by name: the
  name, then the subjects of its 20 nearest gallery sequences as int (a
  subject may repeat). `Evaluator.run` writes it as ``grew_submission.csv``
  in the workdir when the test set has type-03 probes.

Ties between distances are broken by gallery order (`ranking`).
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProbeCounts
from gait_jax.evaluation.protocols.results import ProbeSetResult
from gait_jax.evaluation.protocols.results import ProtocolResult

NUM_RANK = 20
REPORTED = (1, 5, 10, 20)  # summary keys rank-<k>
SUBMISSION_FILE = 'grew_submission.csv'
PROXY_DESCRIPTION = ('LOCAL PROXY, not the official GREW protocol: gallery '
                     "'01' vs probe '02', rank-k accuracy (%)")


def grew_proxy(proto: Protocol, data: EvalSet, *, metric: str,
               backend: str) -> ProtocolResult:
  """The local proxy's rank-1..20; see the module docstring.

  Args:
    proto: the protocol (gallery types, probe types).
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.

  Returns:
    One probe set 'proxy' with the 20 accuracies as columns; summary
    rank-1, rank-5, rank-10, rank-20.
  """
  gal = np.flatnonzero(np.isin(data.types, proto.gallery_types))
  prb = np.flatnonzero(np.isin(data.types, proto.probe_sets['proxy']))
  p_code, g_code = ranking.label_codes(data.subjects[prb], data.subjects[gal])
  first = np.full(prb.size, -1, np.int64)
  for sl, dist in ranking.distance_blocks(data.embeddings, prb, gal, metric,
                                          backend):
    first[sl] = ranking.first_match_rank(dist,
                                         p_code[sl, None] == g_code[None, :])
  hits = (first[:, None] >= 0) & (first[:, None] < np.arange(1, NUM_RANK + 1))
  with np.errstate(invalid='ignore', divide='ignore'):
    acc = np.round(hits.sum(0) * 100 / prb.size, 2)  # [20]
  no_gallery = int(np.sum(first < 0))
  counts = ProbeCounts(probes=int(prb.size), no_gallery=no_gallery,
                       no_match=no_gallery,
                       no_match_note='(no gallery sequence of their '
                       'subject): counted as misses (OpenGait rule)')
  extra = {f'rank-{k}': float(acc[k - 1]) for k in REPORTED[1:]}
  result = ProbeSetResult('proxy', acc, float(acc[0]), counts,
                          extra=extra, summary_name='rank-1')
  return ProtocolResult(proto.name, (), {'proxy': result}, metric,
                        description=PROXY_DESCRIPTION,
                        columns=tuple(f'R{k}' for k in range(1, NUM_RANK + 1)))


def submission_rows(data: EvalSet, *, metric: str, backend: str,
                    num_rank: int = NUM_RANK) -> list[list[str]]:
  """The submission's rows: [probe name, subject of the nearest, ...].

  Args:
    data: the embedded test set (types '01', '02' gallery, '03' probes).
    metric: distance metric.
    backend: distance backend.
    num_rank: subjects per row (fewer when the gallery is smaller).

  Returns:
    One row per type-03 probe, sorted by name; [] when there is none.
  """
  gal = np.flatnonzero(np.isin(data.types, ('01', '02')))
  prb = np.flatnonzero(data.types == '03')
  if prb.size == 0 or gal.size == 0:
    return []
  prb = prb[np.argsort(data.views[prb], kind='stable')]  # by probe name
  k = min(num_rank, gal.size)
  if k < num_rank:
    logging.warning('GREW submission: only %d gallery sequences, %d ranks',
                    gal.size, k)
  labels = np.array([str(int(s)) if s.isdigit() else s
                     for s in data.subjects[gal].tolist()])
  rows = []
  for sl, dist in ranking.distance_blocks(data.embeddings, prb, gal, metric,
                                          backend):
    top = ranking.stable_topk(dist, k)  # [b, k] gallery positions
    for name, row in zip(data.views[prb[sl]].tolist(), labels[top].tolist()):
      rows.append([name] + row)
  return rows


def write_submission(data: EvalSet, workdir: str, *, metric: str,
                     backend: str) -> list[str]:
  """Writes ``<workdir>/grew_submission.csv`` when there are type-03 probes.

  Returns:
    [path], or [] when the test set has no type-03 probe.
  """
  rows = submission_rows(data, metric=metric, backend=backend)
  if not rows:
    return []
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, SUBMISSION_FILE)
  header = ['videoId'] + [f'rank{k}' for k in range(1, len(rows[0]))]
  with open(path, 'w') as f:
    for row in [header] + rows:
      f.write(','.join(row) + '\n')
  logging.info('Wrote %s (%d probes)', path, len(rows))
  return [path]


PROTOCOLS = (
    Protocol('grew', grew_proxy, {'proxy': ('02',)}, ('01',), family='grew',
             outputs=write_submission),
)
