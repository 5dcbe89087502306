"""CASIA-B protocols (OpenGait ``evaluate_indoor_dataset``, 'CASIA-B').

* ``casia_b``: single-view gallery; gallery ``nm-01..04``, probe sets NM
  (``nm-05/06``), BG (``bg-01/02``), CL (``cl-01/02``); rank-1 with the
  identical view excluded, averaged over the 11 probe views.
* ``casia_b_cross_view``: cross-view gallery ``nm-02, bg-02, cl-02`` of every
  view, probes ``nm-01``, ``bg-01``, ``cl-01``; rank-1 and mAP (the mAP
  columns of OpenGait's model zoo).
"""

from gait_jax.evaluation.protocols import rules
from gait_jax.evaluation.protocols.base import Protocol

PROTOCOLS = (
    Protocol('casia_b', rules.single_view_gallery,
             {'NM': ('nm-05', 'nm-06'), 'BG': ('bg-01', 'bg-02'),
              'CL': ('cl-01', 'cl-02')},
             ('nm-01', 'nm-02', 'nm-03', 'nm-04'), family='casia_b'),
    Protocol('casia_b_cross_view', rules.cross_view_gallery,
             {'NM': ('nm-01',), 'BG': ('bg-01',), 'CL': ('cl-01',)},
             ('nm-02', 'bg-02', 'cl-02'), {'remove_no_gallery': False},
             family='casia_b'),
)
