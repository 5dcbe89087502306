"""gait_jax: silhouette gait recognition in JAX/Flax with the Generalized
Inter-class Loss.

Subpackages and modules: ``data`` (sources, P×K sampling, grain pipelines),
``models`` (GaitSet, GaitPart, GaitGL, Baseline, GaitBase), ``losses``
(triplet with pair weights, uniformity, pair-softmax, CE), ``train`` (the
sharded trainer), ``evaluate``/``protocols``/``retrieval`` (evaluation),
``torch_compat`` (OpenGait checkpoints and parity), ``xla_cpu`` (XLA:CPU
defaults, applied on import).
"""

from gait_jax import xla_cpu as _xla_cpu

_xla_cpu.apply_defaults()

__version__ = '0.1.0'
