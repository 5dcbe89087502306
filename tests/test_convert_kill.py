"""A conversion killed with SIGKILL (workers included) and restarted.

The converter is run as the CLI in its own process group and killed at two
points: while the workers pretreat sequences into the cache, and while the
single writer fills the TFDS shards. A restart must finish the work and give
exactly the records of an uninterrupted conversion.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np

from data_prep import convert
from data_prep import seq_cache
import test_convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_tree(root, subjects=('001', '002', '075', '076'), frames=12):
  for si, sid in enumerate(subjects):
    for typ in ('nm-01', 'nm-02', 'bg-01', 'cl-01'):
      for view in ('000', '018', '036', '054', '090'):
        imgs = [test_convert.figure(20 + 20 * f + 7 * si, 0.4 * f)
                for f in range(frames)]
        test_convert.write_frames(
            os.path.join(root, sid, typ, view),
            [(f'{sid}-{typ}-{view}-{f:03d}.png', im)
             for f, im in enumerate(imgs)])


def _start(raw, out, cache):
  cmd = [sys.executable, '-m', 'data_prep.convert', '--dataset=casia_b',
         f'--raw_dir={raw}', f'--out_dir={out}', f'--cache_dir={cache}',
         '--workers=2']
  return subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc, condition, timeout=300.0):
  """SIGKILLs the process group as soon as `condition()` holds."""
  start = time.monotonic()
  while not condition():
    assert proc.poll() is None, (
        'the conversion ended before the kill point: '
        + proc.stderr.read().decode()[-2000:])
    assert time.monotonic() - start < timeout, 'kill point never reached'
    time.sleep(0.002)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL


def _cached(cache):
  return glob.glob(os.path.join(cache, '**', '*' + seq_cache.SUFFIX),
                   recursive=True)


def test_sigkill_during_pretreatment_and_writing_then_restart(tmp_path):
  raw = str(tmp_path / 'raw')
  _make_tree(raw)
  total = 4 * 4 * 5
  reference = convert.convert('casia_b', raw, str(tmp_path / 'ref'),
                              workers=1)

  out, cache = str(tmp_path / 'out'), str(tmp_path / 'cache')
  # 1. Killed while the workers pretreat.
  proc = _start(raw, out, cache)
  _kill_when(proc, lambda: len(_cached(cache)) >= 5)
  n_cached = len(_cached(cache))
  assert 5 <= n_cached < total
  assert not os.path.exists(os.path.join(out, 'casia_b', '1.0.0',
                                         'dataset_info.json'))

  # 2. Restarted, then killed while the shards are written.
  def writing():
    return bool(glob.glob(os.path.join(out, 'casia_b', '*incomplete*')))
  proc = _start(raw, out, cache)
  _kill_when(proc, writing)
  assert len(_cached(cache)) == total
  assert not os.path.exists(os.path.join(out, 'casia_b', '1.0.0',
                                         'dataset_info.json'))

  # 3. Restarted to completion: the same records as the uninterrupted run.
  result = convert.convert('casia_b', raw, out, workers=2, cache_dir=cache)
  # The killed writer's unfinished directory is removed by the restart.
  assert sorted(os.listdir(os.path.join(out, 'casia_b'))) == ['1.0.0']
  test_convert.assert_same_records(test_convert.read_records(reference),
                                   test_convert.read_records(result))
  ref_counts = [len(v) for v in test_convert.read_records(reference).values()]
  assert sum(ref_counts) == total
  assert np.all(np.array(ref_counts) > 0)
