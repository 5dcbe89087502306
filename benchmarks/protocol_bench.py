"""Wall time and peak host memory of every evaluation protocol.

Each protocol scores random embeddings (one centre per subject plus noise,
float32 [N, parts, channels]) laid out like its benchmark's test set; by
default each runs in a fresh subprocess so its memory peak is its own. The
sizes (`SIZES`; ``--quick``: a few subjects each) are:

* casia_b, casia_b_cross_view: 50 ids x 10 types x 11 views (5,500).
* oumvlp, oumvlp_cross_view: 500 of the 5,153 test ids x 2 x 14 views
  (14,000); the full set (144k sequences) is beyond two CPU cores.
* gait3d: 1,000 ids, each 1 probe + 3..7 gallery sequences (~6,000).
* grew (local proxy): 6,000 ids x types 01, 02 plus 12,000 type-03 probes
  (24,000, GREW's TOTAL_Test); grew_submission: the 12,000 type-03 probes
  against the 12,000 01+02 gallery, top-20 rows (CSV to a temp dir).
* ccpg: 100 ids x 7 statuses x 10 views, U0_D0 twice (8,000).
* sustech1k: 800 ids x 12 views x (00-nm + one of 8
  covariates, round robin) (19,200).
* casia_e: 200 of the 814 test ids x 26 views x 5 types (26,000): gallery
  H/L-scene1-nm-1, probes H-scene2-nm-1, H-scene3-bg-1, H-scene3_s-cl-1.

Peak memory: ``tracemalloc`` peak of the scoring (NumPy registers its
buffers) and the process's ``ru_maxrss`` before and after it.

  python benchmarks/protocol_bench.py [--quick] [--protocols=gait3d,grew]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

ALL = ('casia_b', 'casia_b_cross_view', 'oumvlp', 'oumvlp_cross_view',
       'gait3d', 'grew', 'grew_submission', 'ccpg', 'sustech1k', 'casia_e')
# family -> (full ids, quick ids) [, extra full/quick count]
SIZES = {'casia_b': (50, 3), 'oumvlp': (500, 3), 'gait3d': (1000, 8),
         'grew': (6000, 12, 12000, 6), 'ccpg': (100, 3),
         'sustech1k': (800, 3), 'casia_e': (200, 3)}


def _family(name: str) -> str:
  return name.replace('_cross_view', '').replace('_submission', '')


def layout(name: str, quick: bool, rng: np.random.Generator):
  """(subjects, types, views, protocol options) of a benchmark's test set."""
  fam = _family(name)
  size = SIZES[fam]
  n = size[1] if quick else size[0]
  subj, typ, view, opts = [], [], [], {}

  def add(s, t, v):
    subj.append(s)
    typ.append(t)
    view.append(v)

  if fam == 'casia_b':
    types = [f'nm-0{i}' for i in range(1, 7)] + ['bg-01', 'bg-02', 'cl-01',
                                                 'cl-02']
    for s in range(n):
      for t in types:
        for v in range(0, 181, 18):
          add(f'{s + 75:03d}', t, f'{v:03d}')
  elif fam == 'oumvlp':
    views = list(range(0, 91, 15)) + list(range(180, 271, 15))
    for s in range(n):
      for t in ('00', '01'):
        for v in views:
          add(f'{s:05d}', t, f'{v:03d}')
  elif fam == 'gait3d':
    keys = []
    for s in range(n):
      for k in range(1 + int(rng.integers(3, 8))):
        add(f'{s:04d}', f'camid{int(rng.integers(1, 40))}_videoid{k % 3}',
            f'seq{k}')
        if k == 0:
          keys.append('-'.join([subj[-1], typ[-1], view[-1]]))
    opts['probe_set'] = keys
  elif fam == 'grew':
    for s in range(n):
      for t in ('01', '02'):
        add(f'{s + 1:05d}', t, f'{rng.integers(1 << 40):010x}')
    for _ in range(size[3] if quick else size[2]):
      add('probe', '03', f'{rng.integers(1 << 40):010x}')
  elif fam == 'ccpg':
    statuses = ('U0_D0', 'U0_D0_BG', 'U1_D0', 'U1_D1', 'U2_D2', 'U3_D3',
                'U0_D3', 'U0_D0')
    for s in range(n):
      for i, t in enumerate(statuses):
        for v in range(10):
          add(f'{s + 100:03d}', t, f'{v:02d}_{i}')
  elif fam == 'sustech1k':
    views = ('000', '000-far', '045', '090', '090-near', '135', '180',
             '180-far', '225', '270', '270-far', '315')
    covs = ('nm', 'bg', 'cl', 'cr', 'ub', 'uf', 'oc', 'nt')
    for s in range(n):
      for i, v in enumerate(views):
        add(f'{s:04d}', '00-nm', v)
        add(f'{s:04d}', f'0{(s + i) % 4 + 1}-{covs[(s + i) % 8]}', v)
  elif fam == 'casia_e':
    types = ('H-scene1-nm-1', 'L-scene1-nm-1', 'H-scene2-nm-1',
             'H-scene3-bg-1', 'H-scene3_s-cl-1')
    for s in range(n):
      for t in types:
        for v in range(26):
          add(f'{s + 201:03d}', t, f'{v * 14:03d}' if v else '270')
  return subj, typ, view, opts


def embeddings(subjects, parts: int, channels: int,
               rng: np.random.Generator) -> np.ndarray:
  """float32 [N, parts, channels]: subject centre (scale 0.12) + unit noise,
  built in place (centres this close give rank-1 well below 100%)."""
  _, code = np.unique(np.asarray(subjects), return_inverse=True)
  centres = rng.standard_normal((code.max() + 1, parts, channels),
                                dtype=np.float32)
  out = np.empty((len(subjects), parts, channels), np.float32)
  for start in range(0, len(subjects), 4096):
    sl = slice(start, start + 4096)
    out[sl] = rng.standard_normal(out[sl].shape, dtype=np.float32)
    out[sl] += 0.12 * centres[code[sl]]
  return out


def _rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(name: str, args) -> dict:
  """Builds the test set of ``name``, scores it, returns time and memory."""
  from gait_jax.evaluation import protocols  # pylint: disable=g-import-not-at-top
  from gait_jax.evaluation.protocols import grew  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  subj, typ, view, opts = layout(name, args.quick, rng)
  emb = embeddings(subj, args.parts, args.channels, rng)
  rss_before = _rss_mib()
  tracemalloc.start()
  start = time.perf_counter()
  if name == 'grew_submission':
    data = protocols.EvalSet.build(emb, subj, typ, view)
    with tempfile.TemporaryDirectory() as tmp:
      paths = grew.write_submission(data, tmp, metric=args.metric,
                                    backend=args.backend)
      rows = sum(1 for _ in open(paths[0])) - 1
    summary = {'rows': rows}
  else:
    result = protocols.evaluate(name, emb, subj, typ, view,
                                metric=args.metric, backend=args.backend,
                                **opts)
    summary = dict(list(result.summary().items())[:2])
  seconds = time.perf_counter() - start
  _, traced = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  return {'protocol': name, 'sequences': len(subj),
          'embeddings_mib': emb.nbytes / 2**20, 'seconds': seconds,
          'traced_peak_mib': traced / 2**20, 'rss_before_mib': rss_before,
          'rss_peak_mib': _rss_mib(), 'summary': summary}


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='Tiny sizes.')
  parser.add_argument('--protocols', default=','.join(ALL))
  parser.add_argument('--parts', type=int, default=16)
  parser.add_argument('--channels', type=int, default=256)
  parser.add_argument('--metric', default='euc')
  parser.add_argument('--backend', default='numpy')
  parser.add_argument('--in_process', action='store_true',
                      help='No subprocess per protocol (peaks then overlap).')
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  parser.add_argument('--json', help='Also write the rows to this file.')
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(run_one(args.worker, args)), flush=True)
    return []
  names = [n for n in args.protocols.split(',') if n]
  unknown = set(names) - set(ALL)
  if unknown:
    raise ValueError(f'Unknown protocols {sorted(unknown)}; valid: {ALL}')
  rows = []
  for name in names:
    if args.in_process:
      rows.append(run_one(name, args))
      continue
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={name}',
           f'--parts={args.parts}', f'--channels={args.channels}',
           f'--metric={args.metric}', f'--backend={args.backend}']
    cmd += ['--quick'] if args.quick else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         cwd=REPO).stdout
    rows.append(json.loads(out.strip().splitlines()[-1]))
  _print(rows, args)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  return rows


def _print(rows, args) -> None:
  import platform  # pylint: disable=g-import-not-at-top
  print(f'machine: {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} CPU cores; embeddings {args.parts}x'
        f'{args.channels} float32, metric {args.metric}, backend '
        f'{args.backend}{", quick" if args.quick else ""}')
  print('| protocol | sequences | embeddings MiB | time s | traced peak MiB '
        '| RSS before MiB | RSS peak MiB | first summary values |')
  print('|---|---|---|---|---|---|---|---|')
  for r in rows:
    summ = ', '.join(f'{k} {v:.2f}' if isinstance(v, float) else f'{k} {v}'
                     for k, v in r['summary'].items())
    print(f"| {r['protocol']} | {r['sequences']} | "
          f"{r['embeddings_mib']:.0f} | {r['seconds']:.2f} | "
          f"{r['traced_peak_mib']:.0f} | {r['rss_before_mib']:.0f} | "
          f"{r['rss_peak_mib']:.0f} | {summ} |", flush=True)


if __name__ == '__main__':
  main()
