"""The protocol registry: named probe/gallery rules of the gait benchmarks.

Every benchmark family module in `FAMILIES` lists its protocols in a
``PROTOCOLS`` tuple of `Protocol` entries; a protocol names its probe sets,
its gallery types, its options and its rule function (the shared ones are in
``rules``: single-view gallery, cross-view gallery). To add a benchmark, write
its family module and add it to `FAMILIES`. A protocol may also write files
besides the report (`write_outputs`, e.g. the GREW submission CSV).

  result = protocols.evaluate('casia_b', emb, subjects, types, views)
  print(result.format_table())
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Sequence

import numpy as np

from gait_jax.evaluation import retrieval
from gait_jax.evaluation.protocols import casia_b
from gait_jax.evaluation.protocols import casia_e
from gait_jax.evaluation.protocols import ccpg
from gait_jax.evaluation.protocols import gait3d
from gait_jax.evaluation.protocols import grew
from gait_jax.evaluation.protocols import oumvlp
from gait_jax.evaluation.protocols import sustech1k
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProbeCounts
from gait_jax.evaluation.protocols.results import ProbeSetResult
from gait_jax.evaluation.protocols.results import ProtocolResult

__all__ = ['EvalSet', 'FAMILIES', 'PROTOCOLS', 'ProbeCounts', 'ProbeSetResult',
           'Protocol', 'ProtocolResult', 'evaluate', 'get_protocol',
           'protocol_names', 'write_outputs']

# The benchmark families, in registry order.
FAMILIES: tuple[ModuleType, ...] = (casia_b, oumvlp, gait3d, grew, ccpg,
                                     sustech1k, casia_e)


def _registry(families: Sequence[ModuleType]) -> dict[str, Protocol]:
  out = {}
  for family in families:
    for proto in family.PROTOCOLS:
      if proto.name in out:
        raise ValueError(f'Protocol {proto.name!r} of {family.__name__} is '
                         f'already defined by {out[proto.name].family}')
      out[proto.name] = proto
  return out


PROTOCOLS: dict[str, Protocol] = _registry(FAMILIES)


def protocol_names() -> list[str]:
  """The registered protocol names, sorted."""
  return sorted(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
  """The protocol called `name`; a ValueError lists the valid names."""
  if name not in PROTOCOLS:
    raise ValueError(f'Unknown protocol {name!r}; valid names: '
                     f'{protocol_names()}')
  return PROTOCOLS[name]


def evaluate(protocol_name: str, embeddings: np.ndarray,
             subjects: Sequence[Any], types: Sequence[Any],
             views: Sequence[Any], *, metric: str = 'euc',
             backend: str = 'numpy', **options: Any) -> ProtocolResult:
  """Evaluates embeddings of a test set under a named protocol.

  Args:
    protocol_name: one of `PROTOCOLS`.
    embeddings: [N, p, c] embeddings of every test sequence.
    subjects: [N] subject ids (str or bytes).
    types: [N] sequence types ('nm-01', '00', ...).
    views: [N] views ('090', ...).
    metric: 'euc' or 'cos'.
    backend: distance backend, 'numpy' or 'jax' (see
      `retrieval.part_distance`).
    **options: protocol options (see each protocol's ``options``, e.g.
      ``remove_no_gallery``).

  Returns:
    The rule's `ProtocolResult`, with the options in effect.
  """
  proto = get_protocol(protocol_name)
  opts = proto.check_options(options)
  retrieval.check_metric(metric)
  retrieval.check_backend(backend)
  data = EvalSet.build(embeddings, subjects, types, views)
  result = proto.rule(proto, data, metric=metric, backend=backend, **opts)
  result.options = opts
  return result


def write_outputs(protocol_name: str, embeddings: np.ndarray,
                  subjects: Sequence[Any], types: Sequence[Any],
                  views: Sequence[Any], workdir: str, *, metric: str = 'euc',
                  backend: str = 'numpy') -> list[str]:
  """Writes the protocol's files besides the report (its ``outputs``).

  Args:
    protocol_name: one of `PROTOCOLS`.
    embeddings: [N, p, c] embeddings of every test sequence.
    subjects: [N] subject ids.
    types: [N] sequence types.
    views: [N] views.
    workdir: where the files go.
    metric: 'euc' or 'cos'.
    backend: distance backend.

  Returns:
    The paths written ([] when the protocol has none or nothing to write).
  """
  proto = get_protocol(protocol_name)
  if proto.outputs is None:
    return []
  data = EvalSet.build(embeddings, subjects, types, views)
  return proto.outputs(data, workdir, metric=metric, backend=backend)
