"""Gait3D protocol (OpenGait ``evaluate_Gait3D``).

* ``gait3d``: a test sequence is a probe iff its key
  ``'<subject>-<type>-<view>'`` is in the probe set (Gait3D's PROBE_SET, one
  sequence per test subject); every other test sequence is gallery, with no
  camera exclusion. Rank-1/5/10, mAP and mINP of the rank-list rule
  (``rank_list``, OpenGait ``evaluate_rank``): probes without a true match
  are skipped and counted; nothing is rounded.

The option ``probe_set`` is None (the PROBE_SET shipped beside this module,
``gait3d_probe_set.json``), a list of keys, or the path of a JSON file with a
``probe_set`` (or Gait3D.json's ``PROBE_SET``) list.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from gait_jax.evaluation.protocols import rank_list
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProtocolResult

PROBE_SET_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'gait3d_probe_set.json')
RANKS = (1, 5, 10)


def load_probe_set(probe_set: str | Sequence[str] | None = None) -> set[str]:
  """The probe keys: the shipped set (None), a JSON file's, or a list.

  Raises:
    ValueError: the file has neither a 'probe_set' nor a 'PROBE_SET' list.
  """
  if probe_set is None or isinstance(probe_set, (str, os.PathLike)):
    path = PROBE_SET_FILE if probe_set is None else os.fspath(probe_set)
    with open(path) as f:
      content = json.load(f)
    keys = content.get('probe_set', content.get('PROBE_SET'))
    if not isinstance(keys, list):
      raise ValueError(f'{path} holds no "probe_set" or "PROBE_SET" list')
    return set(map(str, keys))
  return set(map(str, probe_set))


def sequence_keys(data: EvalSet) -> np.ndarray:
  """[N] '<subject>-<type>-<view>' of every test sequence."""
  return np.array(['-'.join(k) for k in zip(data.subjects.tolist(),
                                            data.types.tolist(),
                                            data.views.tolist())])


def gait3d_rule(proto: Protocol, data: EvalSet, *, metric: str, backend: str,
                probe_set: Any = None) -> ProtocolResult:
  """Rank-k, mAP and mINP of the probe set against the rest of the test set.

  Args:
    proto: the protocol.
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.
    probe_set: see the module docstring.

  Returns:
    One probe set 'test' whose summary is rank-1, rank-5, rank-10, mAP, mINP.
  """
  is_probe, is_gallery = gait3d_roles(proto, data, probe_set=probe_set)
  prb, gal = np.flatnonzero(is_probe), np.flatnonzero(is_gallery)
  scores = rank_list.rank_list_scores(data, prb, gal, metric=metric,
                                      backend=backend)
  counts = rank_list.rank_list_counts(data, prb, gal, scores,
                                      'in the gallery')
  result = rank_list.rank_list_result('test', scores, counts, RANKS)
  return ProtocolResult(
      proto.name, (), {'test': result}, metric,
      description=(f'{prb.size} probes of the probe set vs {gal.size} gallery '
                   'sequences (%, evaluate_rank, not rounded)'),
      columns=tuple(result.summary()))


def gait3d_roles(proto: Protocol, data: EvalSet, *, probe_set: Any = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Probes: the probe set's sequences; gallery: every other one."""
  del proto
  is_probe = np.isin(sequence_keys(data), list(load_probe_set(probe_set)))
  return is_probe, ~is_probe


PROTOCOLS = (
    Protocol('gait3d', gait3d_rule, {'test': ()}, (), {'probe_set': None},
             family='gait3d', roles=gait3d_roles),
)
