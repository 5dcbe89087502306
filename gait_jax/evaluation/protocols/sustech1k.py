"""SUSTech1K protocol (OpenGait ``single_view_gallery_evaluation``,
'SUSTech1K', ``num_rank`` 5).

* ``sustech1k``: gallery = the sequences whose type contains ``00-nm``;
  probe sets by **substring** of the type: Normal ``01-nm``, Bag ``bg``,
  Clothing ``cl``, Carrying ``cr``, Umbrella ``ub`` (OpenGait's key is
  spelled ``Umberalla``), Uniform ``uf``, Occlusion ``oc``, Night ``nt``,
  Overall any of ``01``, ``02``, ``03``, ``04``. The views are the sorted
  unique test views; single-view gallery (``rules.single_view_result``):
  every (probe view, gallery view, rank k = 1..5) cell is rounded to two
  decimals, the identical view is excluded (de_diag) and the per-view values
  are averaged. Summary: ``<name>`` = rank-1, ``<name>/R5`` = rank-5
  (OpenGait returns rank-1 only and logs rank-2..5).
"""

from __future__ import annotations

import numpy as np

from gait_jax.evaluation.protocols import rules
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProtocolResult

PROBES = {'Normal': ('01-nm',), 'Bag': ('bg',), 'Clothing': ('cl',),
          'Carrying': ('cr',), 'Umbrella': ('ub',), 'Uniform': ('uf',),
          'Occlusion': ('oc',), 'Night': ('nt',),
          'Overall': ('01', '02', '03', '04')}
GALLERY = ('00-nm',)
NUM_RANK = 5


def type_contains(types: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
  """[N] bool: the type contains any of ``parts``."""
  return np.array([any(p in t for p in parts) for t in types.tolist()], bool)


def sustech1k_rule(proto: Protocol, data: EvalSet, *, metric: str,
                   backend: str) -> ProtocolResult:
  """Rank-1 and rank-5 of the nine probe sets; see the module docstring.

  Args:
    proto: the protocol (substrings of the probe sets and gallery).
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.

  Returns:
    One `ProbeSetResult` per probe set (rank-1 per view, [V, V] rank-1
    matrix, '<name>/R2'..'<name>/R5' means).
  """
  views = sorted(set(data.views.tolist()))
  gal = np.flatnonzero(type_contains(data.types, proto.gallery_types))
  probes = {name: np.flatnonzero(type_contains(data.types, parts))
            for name, parts in proto.probe_sets.items()}
  result = rules.single_view_result(proto, data, views, gal, probes,
                                    metric=metric, backend=backend,
                                    num_rank=NUM_RANK)
  for r in result.probe_sets.values():  # Summary: rank-1 and rank-5 only.
    r.extra = {f'{r.name}/R{NUM_RANK}': r.extra[f'{r.name}/R{NUM_RANK}']}
  result.description = ('rank-1 (%), identical view excluded (and /R5: '
                        'rank-5)')
  return result


def sustech1k_roles(proto: Protocol, data: EvalSet
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Probes and gallery by substring of the type, as the rule selects them."""
  probe_parts = tuple(p for parts in proto.probe_sets.values() for p in parts)
  return (type_contains(data.types, probe_parts),
          type_contains(data.types, proto.gallery_types))


PROTOCOLS = (
    Protocol('sustech1k', sustech1k_rule, PROBES, GALLERY,
             family='sustech1k', roles=sustech1k_roles),
)
