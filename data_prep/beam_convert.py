r"""Apache Beam pretreatment for OUMVLP- and GREW-scale conversions.

The pretreatment stage of `data_prep.convert` (the expensive part: decoding
millions of PNGs) can run as a Beam pipeline instead of a local process pool:

  python -m data_prep.convert --dataset=oumvlp --raw_dir=/data/OUMVLP \
      --out_dir=/data/tfds --beam_pipeline_options="runner=DirectRunner,\
direct_num_workers=32,direct_running_mode=multi_processing"

or from Python, `convert.convert(..., pretreat=beam_pretreat_fn(options))`.
This module needs only `seq_cache` (the tasks and the worker function);
`convert` imports it, never the other way round.
Each element is a chunk of up to `CHUNK` sequences: the tasks are pickled to
chunk files beside the cache (`<cache>/.beam_tasks-<pid>/`, removed at the
end), so the pipeline itself carries only their paths, however many
sequences there are (GREW: 128k sequences, millions of file paths). A worker
loads a chunk, pretreats each sequence whose cache file is still missing and
writes that file atomically, exactly like the pool, so Beam and pool runs
share the cache and a failed or cancelled pipeline resumes where it stopped. The TFDS shards are
then written by the converting process from the cache, in the same
deterministic order. Runners other than the DirectRunner need the raw tree
and the cache directory on a file system mounted on every worker, and the
`data_prep` package installed there.

`apache_beam` is optional: this module imports without it, and
`beam_available()` says whether it can run.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
from typing import Callable, Sequence

from data_prep import seq_cache


def beam_available() -> bool:
  """Whether `apache_beam` is installed."""
  return importlib.util.find_spec('apache_beam') is not None


def _require_beam():
  if not beam_available():
    raise ImportError(
        'The Beam conversion path needs apache-beam (pip install '
        '"apache-beam==2.77.0"); without it, use the process pool '
        '(--workers=N).')
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  return beam


def parse_options(options: str | Sequence[str] | None) -> list[str]:
  """Turns 'a=1,b=2' (or a list) into Beam flags ['--a=1', '--b=2']."""
  if not options:
    return []
  items = options.split(',') if isinstance(options, str) else list(options)
  return [o if o.startswith('--') else f'--{o}'
          for o in (i.strip() for i in items) if o]


CHUNK = 256  # at most this many sequences per pipeline element
_MIN_CHUNKS = 256  # smaller conversions get chunks of fewer sequences


def _write_chunks(todo: Sequence[seq_cache.Task]) -> tuple[str, list[str]]:
  """Pickles the tasks in chunks: (folder, chunk files)."""
  common = os.path.commonpath([os.path.dirname(os.path.abspath(t.cache_path))
                               for t in todo])
  folder = os.path.join(common, f'.beam_tasks-{os.getpid()}')
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  size = max(1, min(CHUNK, -(-len(todo) // _MIN_CHUNKS)))
  paths = []
  for i in range(0, len(todo), size):
    path = os.path.join(folder, f'{i // size:06d}.pkl')
    with open(path, 'wb') as f:
      pickle.dump(list(todo[i:i + size]), f, pickle.HIGHEST_PROTOCOL)
    paths.append(path)
  return folder, paths


def pretreat_chunk(path: str) -> int:
  """Pretreats the tasks of a chunk file whose cache file is missing;
  returns how many it ran."""
  with open(path, 'rb') as f:
    tasks = pickle.load(f)
  done = 0
  for task in tasks:
    if not os.path.exists(task.cache_path):
      seq_cache.process_task(task)
      done += 1
  return done


def run_beam_pretreatment(tasks: Sequence[seq_cache.Task],
                          options: str | Sequence[str] | None = None) -> int:
  """Pretreats the tasks whose cache file is missing in a Beam pipeline.

  Args:
    tasks: all sequences of the conversion.
    options: Beam pipeline options ('runner=DirectRunner,...' or a list).

  Returns:
    The number of sequences pretreated.
  """
  beam = _require_beam()
  from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  todo = [t for t in tasks if not os.path.exists(t.cache_path)]
  if not todo:
    return 0
  opts = pipeline_options.PipelineOptions(parse_options(options))
  folder, chunks = _write_chunks(todo)
  try:
    with beam.Pipeline(options=opts) as p:
      _ = (p
           | 'Chunks' >> beam.Create(chunks)
           | 'Spread' >> beam.Reshuffle()
           | 'Pretreat' >> beam.Map(pretreat_chunk))
  finally:
    shutil.rmtree(folder, ignore_errors=True)
  missing = [t.ref.key for t in todo if not os.path.exists(t.cache_path)]
  if missing:
    raise RuntimeError(f'The Beam pipeline finished but {len(missing)} '
                       f'sequences have no cache file, e.g. {missing[:3]}')
  return len(todo)


def beam_pretreat_fn(options: str | Sequence[str] | None = None
                     ) -> Callable[[list[seq_cache.Task]], int]:
  """A `pretreat` hook for `convert.convert` that runs Beam with `options`."""
  _require_beam()
  return lambda tasks: run_beam_pretreatment(tasks, options)
