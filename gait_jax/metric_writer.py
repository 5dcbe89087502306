"""Training metrics to TensorBoard event files and a JSON-lines file.

TensorBoard files are written with ``tensorboardX`` (no TensorFlow needed) to
``<workdir>/tensorboard``; every scalar is also appended to
``<workdir>/metrics.jsonl`` so runs can be compared without TensorBoard. Only
process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping

import jax


class MetricWriter:
  """Writes scalar metrics of process 0.

  Args:
    workdir: the run's directory.
  """

  def __init__(self, workdir: str):
    self._enabled = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self._enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      os.makedirs(workdir, exist_ok=True)
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Writes one row of scalars at ``step``."""
    if not self._enabled:
      return
    row = {'step': int(step)}
    for name, value in sorted(scalars.items()):
      value = float(value)
      row[name] = value if math.isfinite(value) else str(value)
      self._tb.add_scalar(name, value, int(step))
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()

  def flush(self) -> None:
    if self._enabled:
      self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._tb.close()
      self._jsonl.close()
      self._enabled = False


def format_scalars(scalars: Mapping[str, float]) -> str:
  """A compact one-line rendering for stdout."""
  return ' '.join(f'{k}={float(v):.4g}' for k, v in sorted(scalars.items()))
