"""Evaluation: embedding extraction, retrieval metrics, protocols, reports.

* ``extract``: batched, masked embedding of a test split.
* ``retrieval``: part distances, single-view rank-1, cross-view rank-1/AP.
* ``ranking``: block-wise ranking kernels (first true match, AP/INP of the
  ranked list, stable top-k) of the single-view, rank-list and GREW rules.
* ``protocols``: the protocol registry (one module per benchmark family), the
  scoring rules and the result classes.
* ``report``: the JSON report; ``plots``: rank-1 heatmaps and a t-SNE.
* ``evaluator``: `Evaluator`, the one path that embeds, scores, writes the
  report and plots and prints.

  ev = evaluation.Evaluator(config, model, mesh, workdir)
  result = ev.run(step, variables, final=True)
"""

# pylint: disable=g-bad-import-order
from gait_jax.evaluation import retrieval
from gait_jax.evaluation import ranking
from gait_jax.evaluation import protocols
from gait_jax.evaluation import extract
from gait_jax.evaluation import plots
from gait_jax.evaluation import report
from gait_jax.evaluation import evaluator
# pylint: enable=g-bad-import-order
from gait_jax.evaluation.evaluator import Evaluator
from gait_jax.evaluation.evaluator import protocol_name
from gait_jax.evaluation.protocols import PROTOCOLS
from gait_jax.evaluation.protocols import ProbeCounts
from gait_jax.evaluation.protocols import ProbeSetResult
from gait_jax.evaluation.protocols import ProtocolResult
from gait_jax.evaluation.protocols import evaluate
from gait_jax.evaluation.protocols import get_protocol
from gait_jax.evaluation.protocols import protocol_names

__all__ = ['Evaluator', 'PROTOCOLS', 'ProbeCounts', 'ProbeSetResult',
           'ProtocolResult', 'evaluate', 'evaluator', 'extract',
           'get_protocol', 'plots', 'protocol_name', 'protocol_names',
           'protocols', 'ranking', 'report', 'retrieval']
