"""What the synthetic dataset builders share: reuse check, lazy splits, write.

Both builders (`dataset`, CASIA-B-like; `wild_dataset`, Gait3D-like) render
their sequences from a frozen config with a module-level render function, so
that spawned worker processes can run it, and write them with
`data_prep.tfds_writer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import multiprocessing
import os
import time
from typing import Any

import numpy as np

from data_prep import tfds_writer

VERSION = '1.0.0'

# (config, subject, type, view) -> uint8 frames [T, size, size].
RenderTask = Callable[[tuple[Any, str, str, str]], np.ndarray]


def check_existing(dataset_dir: str, config_json: Mapping[str, Any], *,
                   config_key: str, renderer_version: int,
                   label: str) -> bool:
  """True if a finished dataset with this config exists; raises if another.

  Args:
    dataset_dir: the dataset directory.
    config_json: the requested config (`to_json()`).
    config_key: the metadata key the config is stored under.
    renderer_version: the current renderer version.
    label: what the dataset is called in the error ('synthetic', ...).

  Raises:
    DatasetExistsError: the directory holds a dataset of another config or
      renderer version; the message lists every difference.
  """
  if not os.path.exists(os.path.join(dataset_dir, 'dataset_info.json')):
    return False
  stored = tfds_writer.read_gait_metadata(dataset_dir)
  old = stored.get(config_key) or {}
  new = dict(config_json)
  diffs = [f'{k}: stored {old.get(k)!r}, requested {new.get(k)!r}'
           for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
  if stored.get('renderer_version') != renderer_version:
    diffs.append(f"renderer_version: stored {stored.get('renderer_version')}"
                 f', current {renderer_version}')
  if diffs:
    raise tfds_writer.DatasetExistsError(
        f'{dataset_dir} holds a {label} dataset with another config ('
        + '; '.join(diffs) + '). Pass another data_dir (or name), or delete '
        'that directory to rebuild it.')
  return True


class RenderedSplit:
  """The examples of one split: sized (for progress bars), rendered lazily.

  Args:
    config: the dataset config, passed to `render_task` with each task.
    tasks: (subject, type, view) of every sequence, in record order.
    render_task: module-level function rendering one task.
    pool: a process pool, or None to render in this process.
    report: counters updated as sequences are rendered.
    start: `time.perf_counter()` at the start of the build.
  """

  def __init__(self, config: Any, tasks: Sequence[tuple[str, str, str]],
               render_task: RenderTask, pool, report: dict, start: float):
    self.config = config
    self.tasks = list(tasks)
    self.render_task = render_task
    self.pool = pool
    self.report = report
    self.start = start

  def __len__(self) -> int:
    return len(self.tasks)

  def __iter__(self) -> Iterator[tuple[str, dict]]:
    args = [(self.config,) + task for task in self.tasks]
    frames_iter = (self.pool.imap(self.render_task, args, chunksize=8)
                   if self.pool is not None else map(self.render_task, args))
    for (subject, seq_type, view), frames in zip(self.tasks, frames_iter):
      self.report['sequences'] += 1
      self.report['frames'] += len(frames)
      yield f'{subject}-{seq_type}-{view}', dict(
          frames=frames, subject=subject, type=seq_type, view=view,
          length=len(frames))
    self.report['generation_seconds'] = round(
        time.perf_counter() - self.start, 2)


def render_and_write(name: str, data_dir: str, config: Any,
                     tasks: Mapping[str, Sequence[tuple[str, str, str]]],
                     render_task: RenderTask, metadata: dict, *,
                     description: str, frame_size: int,
                     num_workers: int | None,
                     min_pool_sequences: int) -> str:
  """Renders the tasks of every split (in a process pool when it pays) and
  writes the dataset; returns its directory.

  Args:
    name: dataset name (`<data_dir>/<name>/<VERSION>`).
    data_dir: root directory.
    config: the dataset config (sent to the workers with each task).
    tasks: split name -> its (subject, type, view) tasks.
    render_task: module-level function rendering one task.
    metadata: dataset metadata; its ``report`` dict is filled in while
      rendering.
    description: the dataset description.
    frame_size: frame height and width.
    num_workers: rendering processes (default: the number of CPUs, at most
      8); 1 renders in this process. Does not change the output.
    min_pool_sequences: below this many sequences rendering stays in this
      process (starting workers would cost more than it saves).
  """
  if num_workers is None:
    num_workers = min(os.cpu_count() or 1, 8)
  report = metadata['report']
  num_sequences = sum(len(t) for t in tasks.values())
  with contextlib.ExitStack() as stack:
    pool = None
    if num_workers > 1 and num_sequences >= min_pool_sequences:
      # Spawned workers: safe even when this process runs JAX threads.
      ctx = multiprocessing.get_context('spawn')
      pool = stack.enter_context(ctx.Pool(num_workers))
    start = time.perf_counter()
    splits = {split: RenderedSplit(config, split_tasks, render_task, pool,
                                   report, start)
              for split, split_tasks in tasks.items()}
    return tfds_writer.write_gait_dataset(
        name, data_dir, splits, metadata, version=VERSION,
        description=description, frame_size=frame_size)
