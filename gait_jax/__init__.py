"""gait_jax: silhouette gait recognition in JAX/Flax with the Generalized
Inter-class Loss.

Subpackages and modules: ``data`` (sources, P×K sampling, grain pipelines),
``models`` (GaitSet, GaitPart, GaitGL, Baseline, GaitBase, and the ops seam
that picks platform-tuned implementations), ``losses`` (triplet with pair
weights, uniformity, pair-softmax, CE), ``experiment`` (every config → object
builder: mesh, model, optimizer, state, sharded step, class count, checkpoint
meta), ``train_step`` and ``train`` (the per-device step and the loop),
``evaluation`` (embedding extraction, protocols, retrieval metrics, reports),
``commands`` (the work of each ``launch.py`` mode), ``torch_compat``
(OpenGait checkpoints and parity), ``xla_cpu`` (XLA:CPU defaults, applied on
import).
"""

from gait_jax import xla_cpu as _xla_cpu

_xla_cpu.apply_defaults()

__version__ = '0.1.0'
