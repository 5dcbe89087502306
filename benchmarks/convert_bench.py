r"""Conversion throughput: the multi-process converter vs a single-process loop.

  python benchmarks/convert_bench.py --subjects=4 --frames=80 --workers=2

Generates a scaled-down CASIA-B-shaped tree (<sid>/<type>/<view>/*.png, 10
types x 11 views per subject, 320x240 silhouettes of a walking figure) in a
temporary directory, then times
  * reference: a plain loop of the reference pretreatment rule (`cv2.imread`
    + the OpenGait crop/resize/centre steps, as written below) on every
    sequence in this process (no pool, no cache, no shards);
  * converter, pretreatment stage: `convert.pretreat_all` with N workers
    (reading, pretreating, compressing the frames as the shards store them
    and writing the per-sequence cache, worker start-up included);
  * converter, end to end: `convert.convert` with N workers (scan, pretreat,
    cache, report and TFDS shards) into a fresh output directory; the
    one-off import of the TFDS writer is done before timing.
Repeats are interleaved; each variant's best wall time and best CPU time
are kept. It prints sequences/s, the wall-clock ratio to the reference, the
CPU time per sequence (all processes) and the projected ratio on N idle
cores: N x reference CPU / stage CPU for the stage (the pool keeps N cores
busy), and reference CPU / (stage CPU / N + the rest of end to end, which
runs in one process) for end to end. Where other jobs share the cores (the
kernel shares CPU fairly between sessions, so one session's extra processes
do not get more CPU), the wall ratios understate the pool; the CPU times and
the projections do not depend on that. Finally, a sample of sequences is
checked to be pixel-identical between the reference and the shards.

The tree's PNGs are written by OpenCV with its default row filter (Sub);
--png_filter picks others (`png_gray` decodes None/Sub/Up rows, sequences
with Average or Paeth rows are read by OpenCV). The header line says whether
the optional `deflate` package (libdeflate) inflates and compresses.
"""

from __future__ import annotations

import hashlib
import multiprocessing
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
from data_prep import png_gray
from data_prep import raw_sources
from data_prep import seq_cache

_SUBJECTS = flags.DEFINE_integer('subjects', 4, 'Subjects (half train).')
_FRAMES = flags.DEFINE_integer('frames', 80, 'Frames per sequence.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Converter processes.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timing repeats (best kept).')
_TMP_DIR = flags.DEFINE_string(
    'tmp_dir', None, 'Where to build the tree, cache and shards (e.g. a '
    'tmpfs such as /dev/shm to time CPU work only); default: system temp.')
_PNG_FILTER = flags.DEFINE_enum(
    'png_filter', 'default', ['default', 'none', 'sub', 'up', 'avg', 'paeth',
                              'fast', 'all'],
    'PNG row filters of the tree: OpenCV\'s default (Sub) or '
    'IMWRITE_PNG_FILTER_<X> (fast: None/Sub/Up chosen per row; all: also '
    'Average/Paeth, as libpng\'s default). png_gray does not decode Average '
    'and Paeth rows: such sequences are read with OpenCV.')
_CHECK_EVERY = flags.DEFINE_integer(
    'check_every', 10, 'Check every n-th sequence of the shards against the '
    'reference (0: no check).')


# The reference: the plain pretreatment rule, one `cv2.imread` per frame
# (data_prep.pretreatment before its fast path). Kept as it is on purpose.
def reference_pretreat_frame(img: np.ndarray, size: int = 64):
  if img.sum(dtype=np.int64) <= 10000:
    return None, 'dark_frame'
  rows = np.flatnonzero(img.any(axis=1))
  img = img[rows[0]:rows[-1] + 1]  # [h, W]
  h, w = img.shape
  new_w = int(size * (w / h))
  if new_w < 1:
    return None, 'too_narrow'
  img = cv2.resize(img, (new_w, size), interpolation=cv2.INTER_CUBIC)
  cols = np.cumsum(img.sum(axis=0, dtype=np.int64))  # [new_w]
  centre = int(np.argmax(cols > cols[-1] / 2))
  if centre == 0:
    return None, 'no_x_centre'
  half = size // 2
  left, right = centre - half, centre + half
  if left <= 0 or right >= img.shape[1]:
    padded = np.zeros((size, new_w + 2 * half), np.uint8)  # [size, w + size]
    padded[:, half:half + new_w] = img
    img, left, right = padded, left + half, right + half
  return np.ascontiguousarray(img[:, left:right], dtype=np.uint8), ''


def reference_pretreat_files(paths, size: int = 64):
  frames, skipped = [], []
  for path in paths:
    img = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
      frame, reason = None, 'corrupt_image'
    else:
      frame, reason = reference_pretreat_frame(img, size)
    if frame is None:
      skipped.append((os.path.basename(path), reason))
    else:
      frames.append(frame)
  out = (np.stack(frames) if frames
         else np.zeros((0, size, size), np.uint8))  # [T, size, size]
  return out, skipped


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


def _png_params(name: str) -> list[int]:
  if name == 'default':
    return []
  flag = {'fast': 'IMWRITE_PNG_FAST_FILTERS', 'all': 'IMWRITE_PNG_ALL_FILTERS'
          }.get(name, f'IMWRITE_PNG_FILTER_{name.upper()}')
  return [cv2.IMWRITE_PNG_FILTER, getattr(cv2, flag)]


def make_tree(root: str, subjects: int, frames: int,
              png_filter: str = 'default') -> int:
  """Writes the CASIA-B-shaped tree; returns the number of sequences."""
  params = _png_params(png_filter)
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
                      _figure(x, 0.45 * f), params)
        n += 1
  return n


def _cpu() -> tuple[float, float]:
  """CPU seconds of (this process, its reaped children)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _timed(fn) -> tuple[float, float, float]:
  """(wall seconds, CPU seconds of this process, of children) of one call."""
  wall, (own, kids) = time.perf_counter(), _cpu()
  fn()
  own2, kids2 = _cpu()
  return time.perf_counter() - wall, own2 - own, kids2 - kids


def _noop(x):
  return x


def _startup_cpu(workers: int) -> float:
  """CPU seconds to start, use once and stop a pool like the converter's."""
  def run():
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(workers, initializer=seq_cache.init_worker) as pool:
      pool.map(_noop, range(workers))
  best = min(_timed(run)[1:] for _ in range(2))
  return sum(best)


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix='convert_bench_', dir=_TMP_DIR.value)
  workers = _WORKERS.value
  try:
    load_before = os.getloadavg()
    raw = os.path.join(tmp, 'raw')
    n = make_tree(raw, _SUBJECTS.value, _FRAMES.value, _PNG_FILTER.value)
    refs = raw_sources.scan('casia_b', raw).sequences
    with open(refs[0].files[len(refs[0].files) // 2], 'rb') as f:
      kinds = png_gray.row_filters(f.read())
    print(f'tree: {n} sequences x {_FRAMES.value} frames (320x240 PNG, '
          f'filters {_PNG_FILTER.value}: {sorted(kinds or [])} in a sample '
          f'frame), {os.cpu_count()} CPUs, workers={workers} (spawn), PNG '
          f'inflate: {png_gray.INFLATE}; load average before: '
          + ' '.join(f'{x:.2f}' for x in load_before))
    cv2.setNumThreads(1)  # the reference is one process on one core
    from data_prep import tfds_writer  # pylint: disable=unused-import

    def reference():
      for ref in refs:
        reference_pretreat_files(ref.files)

    counter = [0]

    def stage():
      counter[0] += 1
      cache = os.path.join(tmp, f'cache{counter[0]}')
      tasks = convert.plan('casia_b', raw, cache)[3]
      convert.pretreat_all(tasks['train'] + tasks['test'], workers)

    outputs = []

    def end_to_end():
      counter[0] += 1
      outputs.append(convert.convert(
          'casia_b', raw, os.path.join(tmp, f'out{counter[0]}'),
          workers=workers))

    runs = {'ref': [], 'stage': [], 'e2e': []}
    for _ in range(_REPEATS.value):
      runs['ref'].append(_timed(reference))
      runs['stage'].append(_timed(stage))
      runs['e2e'].append(_timed(end_to_end))
    startup = _startup_cpu(workers)
    load_after = os.getloadavg()
    print()
    for key, values in runs.items():
      print(f'{key} wall/CPU (own+children) s per run: '
            + ', '.join(f'{w:.1f}/{o + k:.1f} ({o:.1f}+{k:.1f})'
                        for w, o, k in values))
    wall = {k: min(v[0] for v in vs) for k, vs in runs.items()}
    cpu = {k: min(v[1] + v[2] for v in vs) / n for k, vs in runs.items()}
    kids = {k: min(vs, key=lambda v: v[1] + v[2])[2] / n
            for k, vs in runs.items()}
    cores = min(workers, os.cpu_count() or 1)
    projected = {
        'ref': 1.0,
        'stage': cores * cpu['ref'] / cpu['stage'],
        'e2e': cpu['ref'] / (cpu['stage'] / cores
                             + max(cpu['e2e'] - cpu['stage'], 0.0)),
    }
    print(f'worker start-up: {startup / workers:.2f} CPU-s per worker '
          f'({1e3 * startup / n:.1f} ms per sequence at this size)')
    print('load average after: '
          + ' '.join(f'{x:.2f}' for x in load_after))
    print()
    print(f'| variant | seq/s | wall ratio | CPU per sequence | projected '
          f'ratio on {cores} idle cores |')
    print('| --- | --- | --- | --- | --- |')
    for label, key in (('reference loop, 1 process', 'ref'),
                       (f'converter, pretreatment stage ({workers} workers)',
                        'stage'),
                       ('converter, end to end (+ TFDS shards)', 'e2e')):
      extra = (f' (workers {1e3 * kids[key]:.1f})' if key != 'ref' else '')
      print(f'| {label} | {n / wall[key]:.1f} | '
            f'{wall["ref"] / wall[key]:.2f}x | {1e3 * cpu[key]:.1f} ms'
            f'{extra} | {projected[key]:.2f}x |')

    if _CHECK_EVERY.value and outputs:
      records = {}
      for split in ('train', 'test'):
        source = tfds_writer.open_gait_source(outputs[-1], split)
        for i in range(len(source)):
          r = source[i]
          key = (f"{r['subject'].decode()}-{r['type'].decode()}-"
                 f"{r['view'].decode()}")
          records[key] = hashlib.sha1(r['frames'].tobytes()).hexdigest()
      sample = refs[::_CHECK_EVERY.value]
      same = sum(
          records.get(ref.key) == hashlib.sha1(
              reference_pretreat_files(ref.files)[0].tobytes()).hexdigest()
          for ref in sample)
      print(f'\npixel-identical to the reference: {same}/{len(sample)} '
            f'sampled sequences ({len(records)} records in the shards)')
      if same != len(sample):
        raise SystemExit('the converter output differs from the reference')
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
