"""CASIA-E protocol (OpenGait ``single_view_gallery_evaluation``, 'CASIA-E').

* ``casia_e``: single-view gallery (``rules.single_view_result``); gallery
  ``{H,L}-scene1-nm-{1,2}``; probe sets NM, BG, CL =
  ``{H,L}-{scene2,scene3,scene3_s}-<cond>-{1,2}``. The views are the sorted
  unique test views without ``270`` (its sequences are neither probe nor
  gallery). Rank-1 per (probe view, gallery view) cell rounded to two
  decimals, identical view excluded (de_diag over V-1), mean over probe
  views.
"""

from __future__ import annotations

import numpy as np

from gait_jax.evaluation.protocols import rules
from gait_jax.evaluation.protocols.base import EvalSet
from gait_jax.evaluation.protocols.base import Protocol
from gait_jax.evaluation.protocols.results import ProtocolResult

EXCLUDED_VIEWS = ('270',)


def _types(scenes: tuple[str, ...], cond: str) -> tuple[str, ...]:
  return tuple(f'{q}-{s}-{cond}-{n}' for s in scenes for q in ('H', 'L')
               for n in (1, 2))


PROBES = {c.upper(): _types(('scene2', 'scene3', 'scene3_s'), c)
          for c in ('nm', 'bg', 'cl')}
GALLERY = _types(('scene1',), 'nm')


def casia_e_rule(proto: Protocol, data: EvalSet, *, metric: str,
                 backend: str) -> ProtocolResult:
  """Rank-1 of NM, BG and CL; see the module docstring.

  Args:
    proto: the protocol (probe sets and gallery types).
    data: the embedded test set.
    metric: distance metric.
    backend: distance backend.

  Returns:
    One `ProbeSetResult` per probe set with its [V, V] matrix.
  """
  views = sorted(set(data.views.tolist()) - set(EXCLUDED_VIEWS))
  in_views = np.isin(data.views, views)
  gal = np.flatnonzero(np.isin(data.types, proto.gallery_types) & in_views)
  probes = {name: np.flatnonzero(np.isin(data.types, types) & in_views)
            for name, types in proto.probe_sets.items()}
  return rules.single_view_result(proto, data, views, gal, probes,
                                  metric=metric, backend=backend)


PROTOCOLS = (
    Protocol('casia_e', casia_e_rule, PROBES, GALLERY, family='casia_e'),
)
