r"""Converts a raw gait dataset tree to a TFDS array_record dataset.

  python -m data_prep.convert --dataset=casia_b --raw_dir=/data/CASIA-B \
      --out_dir=/data/tfds --workers=8

Layouts (`--dataset`): casia_b, oumvlp (`raw_sources`), gait3d, grew, ccpg,
sustech1k, casia_e (`raw_wild`, each with its own pretreatment rule, see
`pretreat_wild`), and opengait_pkl: an OpenGait pickle tree of any of these
datasets (`--protocol=<dataset>`, inferred from the names when left out).

Stages:
1. scan the raw tree (`raw_sources`), split its sequences by the partition;
2. pretreat every sequence in a process pool into a per-sequence cache
   (`seq_cache`: the frames already compressed as the shards store them),
   each file written atomically (temporary file + rename); sequences already
   in the cache are skipped, so a killed run restarts where it stopped;
3. write the TFDS shards from the cache in sorted key order (the cached
   frame bytes go into the records as they are), with the dataset metadata
   (protocol, views, types, subjects) and a report of everything that was
   skipped and why (also printed).

Directories whose names do not fit the layout (an unknown view, a subject id
that is not one) and files that are not PNG frames are skipped and counted
in the report rather than stopping the conversion (see `raw_sources`).

Re-running on a finished output reuses it; a restarted run gives the same
records as an uninterrupted one, and two conversions of the same tree (in
any processes, with any number of workers, on the same software versions)
write byte-identical files.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from typing import Any, Callable, Sequence

from data_prep import beam_convert
from data_prep import convert_report
from data_prep import partitions
from data_prep import pretreat_wild
from data_prep import pretreatment
from data_prep import raw_sources
from data_prep import raw_wild
from data_prep import seq_cache

# absl and tqdm are imported where they are used: spawned pool workers
# re-import the main module (this one under `python -m data_prep.convert`),
# and should load little more than `seq_cache` needs.

NO_FRAMES = convert_report.NO_FRAMES
EMPTY_SEQUENCE = convert_report.EMPTY_SEQUENCE
NOT_IN_PARTITION = convert_report.NOT_IN_PARTITION
BAD_PKL = seq_cache.BAD_PKL
SHORT = convert_report.SHORT
format_report = convert_report.format_report
PROTOCOLS = tuple(sorted(raw_sources.PROTOCOL_NAMES))


class ConversionInterrupted(RuntimeError):
  """Raised by the `stop_after` hook (simulates a killed conversion)."""


# The pool runs `seq_cache.process_task` on `seq_cache.Task`s (also used by
# `beam_convert`); the worker processes import only `seq_cache`.
Task = seq_cache.Task
process_task = seq_cache.process_task


def _cache_path(cache_dir: str, ref: raw_sources.SequenceRef,
                kind: str = 'png') -> str:
  """Cache file of a sequence; the name carries a hash of its file names
  and of the pretreatment rule (and, for the rules of `pretreat_wild`, of
  the sequence key, since their type and view names may hold '_')."""
  head = [f'rule {pretreatment.RULE_VERSION}']
  if kind not in ('png', 'pkl'):
    head += [f'{kind} {pretreat_wild.RULE_VERSION}', ref.key]
  names = '\n'.join(head + [os.path.basename(f) for f in ref.files])
  digest = hashlib.sha1(names.encode()).hexdigest()[:10]
  return os.path.join(cache_dir, ref.subject,
                      f'{ref.type}_{ref.view}_{digest}{seq_cache.SUFFIX}')


def pretreat_all(tasks: Sequence[Task], workers: int, *,
                 stop_after: int | None = None,
                 start_method: str = 'spawn') -> int:
  """Runs `process_task` over the tasks whose cache file does not exist.

  Args:
    tasks: all sequences.
    workers: processes (1 = in this process).
    stop_after: stop with `ConversionInterrupted` after this many sequences
      (a hook to simulate a killed run).
    start_method: multiprocessing start method.

  Returns:
    The number of sequences pretreated in this call.
  """
  import tqdm  # pylint: disable=g-import-not-at-top
  todo = [t for t in tasks if not os.path.exists(t.cache_path)]
  bar = tqdm.tqdm(total=len(todo), desc='Pretreating', unit='seq',
                  dynamic_ncols=True)
  done = 0
  with bar:
    if workers <= 1:
      results = map(process_task, todo)
      pool = None
    else:
      ctx = multiprocessing.get_context(start_method)
      pool = ctx.Pool(workers, initializer=seq_cache.init_worker)
      # Small chunks: the pool's last chunks leave few workers idle.
      chunk = max(1, min(4, len(todo) // (workers * 8)))
      results = pool.imap_unordered(process_task, todo, chunksize=chunk)
    try:
      for _ in results:
        done += 1
        bar.update()
        if stop_after is not None and done >= stop_after:
          raise ConversionInterrupted(f'stopped after {done} sequences')
    finally:
      if pool is not None:
        pool.terminate()
        pool.join()
  return done


def _read_cache(task: Task) -> seq_cache.Cached:
  """A cached sequence; an unreadable cache file (e.g. from a crash or a
  damaged disk) is pretreated again."""
  for attempt in range(2):
    try:
      return seq_cache.read(task.cache_path)
    except Exception:  # pylint: disable=broad-except
      if attempt:
        raise
      os.remove(task.cache_path)
      process_task(task)
  raise AssertionError('unreachable')


def _examples(tasks: list[Task]):
  """Zero-argument generator factory of (key, example) for the writer: the
  cached frame bytes are handed over as they are (no recompression)."""
  from data_prep import tfds_writer  # pylint: disable=g-import-not-at-top

  def gen():
    for t in tasks:
      cached = _read_cache(t)
      yield t.ref.key, {
          'frames': tfds_writer.EncodedFrames(cached.frames_zlib,
                                              cached.shape),
          'subject': t.ref.subject, 'type': t.ref.type, 'view': t.ref.view,
          'length': cached.shape[0]}
  return gen


def plan(dataset: str, raw_dir: str, cache_dir: str, *,
         partition: str | None = None, protocol: str | None = None,
         size: int = pretreatment.IMG_SIZE):
  """Scans the raw tree and builds the per-split pretreatment tasks.

  Args:
    dataset: the layout (a key of `raw_wild.ALL_SCANNERS`).
    raw_dir: root of the raw tree.
    cache_dir: the per-sequence cache.
    partition: partition name or JSON path (default: the protocol's own).
    protocol: one of `PROTOCOLS` (default: the dataset; inferred from the
      names for pickle trees).
    size: output frame size.

  Returns:
    (protocol, partition name, scan result, {split: tasks}, keys of the
    sequences outside the partition, partition subjects absent from the
    tree).
  """
  scan = raw_wild.scan(dataset, raw_dir)
  if dataset == 'opengait_pkl':
    # The pickle layout takes any names: keep those of the protocol.
    protocol = protocol or raw_sources.infer_protocol(scan.sequences)
    scan = raw_sources.check_protocol_names(scan, protocol)
    if not any(s.files for s in scan.sequences):
      raise raw_sources.LayoutError(
          f'No sequence of {raw_dir} has {protocol} names; skipped: '
          f'{scan.skipped_dirs[:5]}')
  protocol = protocol or dataset
  partition = partition or partitions.DEFAULT.get(protocol)
  if partition is None:
    raise ValueError(f'No default partition for protocol {protocol!r}: pass '
                     '--partition')
  part = partitions.load_partition(partition)
  kind = scan.rule or ('pkl' if dataset == 'opengait_pkl' else 'png')
  split_of = {s: 'train' for s in part['train']}
  split_of.update({s: 'test' for s in part['test']})
  splits: dict[str, list[Task]] = {'train': [], 'test': []}
  outside = []
  for ref in scan.sequences:
    split = split_of.get(ref.subject)
    if split is None:
      outside.append(ref.key)
      continue
    splits[split].append(Task(ref, _cache_path(cache_dir, ref, kind), kind,
                              size))
  present = {r.subject for r in scan.sequences}
  missing = {s: [i for i in part[s] if i not in present] for s in part}
  return protocol, partition, scan, splits, outside, missing


def splits_rule(splits: dict[str, list[Task]]) -> str:
  """The pretreatment rule of the tasks ('' when there is none)."""
  kinds = sorted({t.kind for ts in splits.values() for t in ts})
  return ','.join(kinds)


def convert(dataset: str, raw_dir: str, out_dir: str, *,
            partition: str | None = None, protocol: str | None = None,
            name: str | None = None, version: str = '1.0.0',
            workers: int = 1, cache_dir: str | None = None,
            stop_after: int | None = None,
            start_method: str = 'spawn',
            pretreat: Callable[[list[Task]], int] | None = None) -> str:
  """Converts a raw tree to `<out_dir>/<name>/<version>` (see module doc).

  Args:
    dataset: the raw layout: 'casia_b', 'oumvlp', 'gait3d', 'grew', 'ccpg',
      'sustech1k', 'casia_e' or 'opengait_pkl'.
    raw_dir: root of the raw tree.
    out_dir: TFDS data dir.
    partition: partition name or JSON path (default: the protocol's own).
    protocol: one of `PROTOCOLS` (the dataset's own; inferred from the names
      for opengait_pkl trees when not given).
    name: dataset name (default: the protocol).
    version: dataset version.
    workers: pretreatment processes.
    cache_dir: per-sequence cache (default: under `<out_dir>/.convert_cache`,
      one folder per layout and raw directory).
    stop_after: testing hook, see `pretreat_all`.
    start_method: multiprocessing start method.
    pretreat: replaces the process pool: called with all tasks, it must run
      `process_task` on those whose cache file is missing and return how
      many it ran (see `beam_convert`).

  Returns:
    The dataset directory.
  """
  from data_prep import tfds_writer  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  if cache_dir is None:
    raw_id = hashlib.sha1(os.path.abspath(raw_dir).encode()).hexdigest()[:8]
    cache_dir = os.path.join(out_dir, '.convert_cache', f'{dataset}_{raw_id}')
  protocol, partition, scan, splits, outside, missing = plan(
      dataset, raw_dir, cache_dir, partition=partition, protocol=protocol)
  name = name or protocol
  done_dir = os.path.join(out_dir, name, version)
  if os.path.exists(os.path.join(done_dir, 'dataset_info.json')):
    stored = tfds_writer.read_gait_metadata(done_dir)
    same = (stored.get('protocol'), stored.get('partition'),
            stored.get('source_layout')) == (protocol, partition, dataset)
    if same and 'report' in stored:
      # Finished before: nothing to pretreat or write (the cache may be gone).
      print(format_report(stored['report']))
      print(f'{done_dir} is already converted; delete it to rebuild.')
      return done_dir
  tasks = splits['train'] + splits['test']
  if pretreat is None:
    n_new = pretreat_all(tasks, workers, stop_after=stop_after,
                         start_method=start_method)
  else:
    n_new = pretreat(tasks)
  kept, report = convert_report.summarise(splits, scan, outside, missing,
                                          _read_cache)
  records = [t.ref for ts in kept.values() for t in ts]
  metadata = {
      'protocol': protocol,
      'partition': partition,
      'source_layout': dataset,
      'pretreatment': splits_rule(splits),
      'views': sorted({r.view for r in records}),
      'types': sorted({r.type for r in records}),
      'train_subjects': sorted({t.ref.subject for t in kept['train']}),
      'test_subjects': sorted({t.ref.subject for t in kept['test']}),
      'report': report,
  }
  print(format_report(report))
  dataset_dir = tfds_writer.write_gait_dataset(
      name, out_dir, {s: _examples(t) for s, t in kept.items() if t},
      metadata, version=version,
      description=f'{protocol} silhouettes converted from a {dataset} tree')
  print(f'Converted {dataset} ({n_new} sequences pretreated in this run) to '
        f'{dataset_dir} in {time.perf_counter() - start:.1f} s')
  return dataset_dir


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('dataset', None, sorted(raw_wild.ALL_SCANNERS),
                    'Layout of the raw tree.')
  flags.DEFINE_string('raw_dir', None, 'Root of the raw tree.')
  flags.DEFINE_string('out_dir', None, 'TFDS data dir to write to.')
  flags.DEFINE_string('partition', None,
                      f'One of {list(partitions.NAMES)} or a JSON path '
                      '(default: the protocol\'s own).')
  flags.DEFINE_enum('protocol', None, list(PROTOCOLS),
                    'Protocol (inferred for opengait_pkl trees).')
  flags.DEFINE_string('name', None, 'Dataset name (default: the protocol).')
  flags.DEFINE_string('version', '1.0.0', 'Dataset version.')
  flags.DEFINE_integer('workers', max(1, (os.cpu_count() or 2)),
                       'Pretreatment processes.')
  flags.DEFINE_string('cache_dir', None, 'Per-sequence pretreatment cache.')
  flags.DEFINE_integer('stop_after', None,
                       'Stop after this many newly pretreated sequences '
                       '(to test restarts).')
  flags.DEFINE_string('beam_pipeline_options', None,
                      'If set, pretreat with an Apache Beam pipeline with '
                      'these comma-separated options, e.g. "runner='
                      'DirectRunner,direct_num_workers=16,direct_running_mode'
                      '=multi_processing" (see data_prep.beam_convert).')
  flags.mark_flags_as_required(['dataset', 'raw_dir', 'out_dir'])


def main(argv: Sequence[str]) -> None:
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  pretreat = None
  if f.beam_pipeline_options is not None:
    pretreat = beam_convert.beam_pretreat_fn(f.beam_pipeline_options)
  convert(f.dataset, f.raw_dir, f.out_dir, partition=f.partition,
          protocol=f.protocol, name=f.name, version=f.version,
          workers=f.workers, cache_dir=f.cache_dir, stop_after=f.stop_after,
          pretreat=pretreat)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
