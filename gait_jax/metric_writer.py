"""Training metrics to TensorBoard event files and a JSON-lines file.

TensorBoard files are written with ``tensorboardX`` (no TensorFlow needed) to
``<workdir>/tensorboard``; every scalar is also appended to
``<workdir>/metrics.jsonl`` (one ``{'step': ..., name: value}`` object a
line) so runs can be compared without TensorBoard. Only process 0 writes.

A run resumed from a checkpoint redoes the steps after it, so a writer told
the step it resumes from (``start_step``) first drops the rows of later steps
from ``metrics.jsonl`` (rewritten atomically: a kill meanwhile leaves the old
file whole) and has TensorBoard purge their events: after the resume each
step appears once.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping

from absl import logging
import jax


def drop_rows_after(path: str, step: int) -> int:
  """Keeps only the rows of ``path`` with ``'step' <= step``.

  The file is rewritten to a temporary file beside it and moved over it with
  ``os.replace``, so it is whole at every moment. Lines that are not JSON
  objects with an integer ``'step'`` are kept as they are, except an
  unterminated last line that does not parse (a write cut short by a kill),
  which is dropped with a warning.

  Args:
    path: a JSON-lines file; nothing happens if it does not exist.
    step: the last step to keep.

  Returns:
    The number of lines dropped (the file is not rewritten when 0).
  """
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = f.readlines()
  kept, dropped = [], 0
  for i, line in enumerate(lines):
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines) - 1 and not line.endswith('\n'):
        logging.warning('Dropping the incomplete last line of %s: %r.', path,
                        line[:200])
        dropped += 1
      else:
        kept.append(line)
      continue
    if isinstance(row, dict) and isinstance(row.get('step'), int) and (
        row['step'] > step):
      dropped += 1
      continue
    kept.append(line if line.endswith('\n') else line + '\n')
  if dropped:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
      f.writelines(kept)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  return dropped


class MetricWriter:
  """Writes scalar metrics of process 0.

  Args:
    workdir: the run's directory.
    start_step: the step the run resumes from (0 for a fresh run): rows and
      TensorBoard events of later steps, left by an earlier attempt, are
      removed first. None: append to what is there.
  """

  def __init__(self, workdir: str, start_step: int | None = None):
    self._enabled = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self._enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, 'metrics.jsonl')
      purge_step = None
      if start_step is not None:
        dropped = drop_rows_after(path, int(start_step))
        if dropped:
          logging.info('Dropped %d rows after step %d from %s (redone now).',
                       dropped, start_step, path)
        purge_step = int(start_step) + 1
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'),
                               purge_step=purge_step)
      self._jsonl = open(path, 'a')

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
