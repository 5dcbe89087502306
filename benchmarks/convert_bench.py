r"""Conversion throughput: the multi-process converter vs a single-process loop.

  python benchmarks/convert_bench.py --subjects=4 --frames=80 --workers=2

Generates a scaled-down CASIA-B-shaped tree (<sid>/<type>/<view>/*.png, 10
types x 11 views per subject, 320x240 silhouettes of a walking figure) in a
temporary directory, then times
  * reference: a plain loop calling `pretreatment.pretreat_files` on every
    sequence in this process (no pool, no cache, no shards);
  * converter, pretreatment stage: `convert.pretreat_all` with N workers
    (reading, pretreating and writing the per-sequence cache);
  * converter, end to end: `convert.convert` with N workers (scan, pretreat,
    cache, report and TFDS shards) into a fresh output directory.
and prints sequences/s, the ratio to the reference and the CPU time per
sequence (all processes). Where other processes share the cores (the kernel
shares CPU fairly between sessions, so extra processes of one session do not
get more CPU), the wall ratios understate the pool; the CPU times and the
projected speed-up (workers x reference CPU / converter CPU) do not depend
on that.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from data_prep import convert
from data_prep import pretreatment
from data_prep import raw_sources

_SUBJECTS = flags.DEFINE_integer('subjects', 4, 'Subjects (half train).')
_FRAMES = flags.DEFINE_integer('frames', 80, 'Frames per sequence.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Converter processes.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timing repeats (best kept).')
_TMP_DIR = flags.DEFINE_string(
    'tmp_dir', None, 'Where to build the tree, cache and shards (e.g. a '
    'tmpfs such as /dev/shm to time CPU work only); default: system temp.')


def _figure(x: int, phase: float) -> np.ndarray:
  """A 320x240 uint8 silhouette of a walking figure centred at column x."""
  img = np.zeros((240, 320), np.uint8)
  dx = int(22 * np.sin(phase))
  cv2.circle(img, (x, 45), 12, 255, -1)
  cv2.ellipse(img, (x, 100), (16, 42), 0, 0, 360, 255, -1)
  cv2.line(img, (x, 135), (x + dx, 215), 255, 10)
  cv2.line(img, (x, 135), (x - dx, 215), 255, 10)
  cv2.line(img, (x, 70), (x - dx, 120), 255, 7)
  cv2.line(img, (x, 70), (x + dx, 120), 255, 7)
  return img


def make_tree(root: str, subjects: int, frames: int) -> int:
  """Writes the CASIA-B-shaped tree; returns the number of sequences."""
  ids = ([f'{i:03d}' for i in range(1, subjects // 2 + 1)]
         + [f'{i:03d}' for i in range(75, 75 + subjects - subjects // 2)])
  n = 0
  for sid in ids:
    for typ in raw_sources.CASIA_B_TYPES:
      for view in [f'{18 * v:03d}' for v in range(11)]:
        folder = os.path.join(root, sid, typ, view)
        os.makedirs(folder)
        for f in range(frames):
          x = 40 + (240 * f) // max(1, frames - 1)
          cv2.imwrite(os.path.join(folder, f'{sid}-{typ}-{view}-{f:03d}.png'),
                      _figure(x, 0.45 * f))
        n += 1
  return n


def _cpu() -> float:
  """CPU seconds of this process and its reaped children."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn) -> tuple[float, float]:
  """(wall seconds, CPU seconds) of one call."""
  wall, cpu = time.perf_counter(), _cpu()
  fn()
  return time.perf_counter() - wall, _cpu() - cpu


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix='convert_bench_', dir=_TMP_DIR.value)
  try:
    raw = os.path.join(tmp, 'raw')
    n = make_tree(raw, _SUBJECTS.value, _FRAMES.value)
    refs = raw_sources.scan('casia_b', raw).sequences
    print(f'tree: {n} sequences x {_FRAMES.value} frames (320x240 PNG), '
          f'{os.cpu_count()} CPUs, workers={_WORKERS.value}')

    def reference():
      cv2.setNumThreads(1)
      for ref in refs:
        pretreatment.pretreat_files(ref.files)

    counter = [0]

    def stage():
      counter[0] += 1
      cache = os.path.join(tmp, f'cache{counter[0]}')
      tasks = convert.plan('casia_b', raw, cache)[3]
      convert.pretreat_all(tasks['train'] + tasks['test'], _WORKERS.value)

    def end_to_end():
      counter[0] += 1
      convert.convert('casia_b', raw, os.path.join(tmp, f'out{counter[0]}'),
                      workers=_WORKERS.value)

    # Interleaved repeats, so that load from other processes hits all three
    # variants alike; the best wall time of each is kept.
    runs = {'ref': [], 'stage': [], 'e2e': []}
    for _ in range(_REPEATS.value):
      runs['ref'].append(_timed(reference))
      runs['stage'].append(_timed(stage))
      runs['e2e'].append(_timed(end_to_end))
    for key, values in runs.items():
      print(f'{key} wall/CPU s per run: '
            + ', '.join(f'{w:.1f}/{c:.1f}' for w, c in values))
    best = {k: min(v) for k, v in runs.items()}
    t_ref = best['ref'][0]
    for label, key in (('reference loop (1 process)', 'ref'),
                       ('converter pretreatment stage', 'stage'),
                       ('converter end to end (+ shards)', 'e2e')):
      wall, cpu = best[key]
      print(f'{label:34s} {n / wall:7.1f} seq/s  {t_ref / wall:5.2f}x  '
            f'(CPU {1e3 * cpu / n:5.1f} ms/seq)')
    # With the cores to itself, the pool is CPU-bound on all workers, so its
    # speed-up is about workers x (reference CPU / converter CPU) per seq.
    workers = min(_WORKERS.value, os.cpu_count() or 1)
    print(f'projected pretreatment speed-up on {workers} idle cores: '
          f'{workers * best["ref"][1] / best["stage"][1]:.2f}x')
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
