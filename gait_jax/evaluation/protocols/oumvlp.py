"""OU-MVLP protocols (OpenGait ``evaluate_indoor_dataset``, 'OUMVLP').

* ``oumvlp``: single-view gallery; probe sequence ``00``, gallery ``01``, 14
  views. Probes whose subject has no gallery sequence in a gallery view count
  as misses there (OpenGait's rule: its ``remove_no_gallery`` is not
  implemented, issue #122); the option ``remove_no_gallery=True`` leaves them
  out (93.3% for GaitSet per its authors).
* ``oumvlp_cross_view``: cross-view gallery, probe ``00``, gallery ``01``;
  rank-1 and mAP.
"""

from gait_jax.evaluation.protocols import rules
from gait_jax.evaluation.protocols.base import Protocol

PROTOCOLS = (
    Protocol('oumvlp', rules.single_view_gallery, {'NM': ('00',)}, ('01',),
             {'remove_no_gallery': False}, family='oumvlp'),
    Protocol('oumvlp_cross_view', rules.cross_view_gallery, {'NM': ('00',)},
             ('01',), {'remove_no_gallery': False}, family='oumvlp'),
)
