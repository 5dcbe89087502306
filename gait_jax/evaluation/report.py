"""The JSON report of an evaluation: ``eval_<step>.json``, ``eval_latest.json``.

The report is `ProtocolResult.to_dict()` (scores per view, [V, V] matrices,
the counts of unmatched probes of every probe set, protocol options) plus the
step and the flat summary that also goes to the metric writer.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging

from gait_jax.evaluation.protocols import ProtocolResult


def report_dict(result: ProtocolResult, step: int,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
  """The JSON-serialisable report of ``result`` at ``step``."""
  report = dict(result.to_dict(), step=int(step), summary=result.summary())
  if extra:
    report.update(extra)
  return report


def write_report(result: ProtocolResult, workdir: str, step: int,
                 extra: dict[str, Any] | None = None) -> str:
  """Writes ``eval_<step>.json`` and ``eval_latest.json`` in ``workdir``.

  Args:
    result: the protocol result.
    workdir: the run's directory (created if missing).
    step: the training step evaluated.
    extra: further top-level entries of the report.

  Returns:
    The path of ``eval_<step>.json``.
  """
  report = report_dict(result, step, extra)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, f'eval_{int(step)}.json')
  for p in (path, os.path.join(workdir, 'eval_latest.json')):
    with open(p, 'w') as f:
      json.dump(report, f, indent=1)
  logging.info('Wrote %s', path)
  return path
