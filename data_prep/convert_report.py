"""The report of a conversion: everything that was skipped, and why.

`summarise` reads the per-sequence cache once after the pretreatment and
returns the sequences that have frames and the report stored in the
dataset metadata (`report`); `format_report` prints a short summary of it.
Every list in the report is {'count': N, 'items': [at most `LIST_LIMIT`]}.
"""

from __future__ import annotations

from typing import Any, Callable

from data_prep import pretreat_wild
from data_prep import raw_sources
from data_prep import seq_cache

NO_FRAMES = 'no_frame_left'  # every frame of the sequence was dropped
EMPTY_SEQUENCE = 'empty_sequence'  # the sequence has no frame file at all
TOO_FEW = pretreat_wild.TOO_FEW  # dropped for its length (CASIA-E rule)
NOT_IN_PARTITION = 'subject_not_in_partition'
SHORT = 5  # sequences with fewer frames are listed (kept) in the report
LIST_LIMIT = 200  # at most this many paths/keys per report list


def _capped(items: list[Any], extra: int = 0) -> dict[str, Any]:
  return {'count': len(items) + extra, 'items': items[:LIST_LIMIT]}


def _by_reason(pairs: list[tuple[str, str]], extra: dict[str, int]
               ) -> dict[str, dict[str, Any]]:
  grouped: dict[str, list[str]] = {reason: [] for reason in extra}
  for path, reason in pairs:
    grouped.setdefault(reason, []).append(path)
  return {k: _capped(v, extra.get(k, 0)) for k, v in sorted(grouped.items())}


def summarise(splits: dict[str, list[seq_cache.Task]],
              scan: raw_sources.ScanResult, outside: list[str],
              missing: dict[str, list[str]],
              read: Callable[[seq_cache.Task], seq_cache.Cached]
              ) -> tuple[dict[str, list[seq_cache.Task]], dict[str, Any]]:
  """Reads the cache once: the tasks with frames, and the report.

  Args:
    splits: split -> the tasks of its sequences.
    scan: the scan of the raw tree (its skipped paths).
    outside: keys of the sequences whose subject is in no split.
    missing: split -> partition subjects absent from the tree.
    read: reads the cache file of a task.

  Returns:
    (split -> tasks of the sequences with at least one frame, report).
  """
  import tqdm  # pylint: disable=g-import-not-at-top
  frame_reasons: dict[str, int] = {}
  frame_examples: list[str] = []
  seq_skips: dict[str, list[str]] = {EMPTY_SEQUENCE: [], NO_FRAMES: []}
  short, kept_tasks, frames_kept = [], {}, 0
  for split, tasks in splits.items():
    kept_tasks[split] = []
    for t in tqdm.tqdm(tasks, desc=f'Checking {split}', unit='seq',
                       dynamic_ncols=True):
      cached = read(t)
      length = cached.shape[0]
      kinds = set()
      for name, reason in cached.skipped:
        kind = reason.split(':')[0]
        kinds.add(kind)
        frame_reasons[kind] = frame_reasons.get(kind, 0) + 1
        if len(frame_examples) < LIST_LIMIT:
          frame_examples.append(f'{t.ref.key}/{name}: {reason}')
      if not t.ref.files:
        seq_skips[EMPTY_SEQUENCE].append(t.ref.key)
      elif length == 0:
        why = TOO_FEW if TOO_FEW in kinds else NO_FRAMES
        seq_skips.setdefault(why, []).append(t.ref.key)
      else:
        kept_tasks[split].append(t)
        frames_kept += length
        if length < SHORT:
          short.append(t.ref.key)
  report = {
      'sequences_found': len(scan.sequences),
      'sequences_written': {s: len(t) for s, t in kept_tasks.items()},
      'sequences_skipped': {k: _capped(v) for k, v in seq_skips.items()},
      'frames_written': frames_kept,
      'frames_skipped': dict(sorted(frame_reasons.items())),
      'frames_skipped_examples': frame_examples[:LIST_LIMIT],
      'files_ignored': _by_reason(scan.ignored, scan.ignored_extra),
      'directories_skipped': _by_reason(scan.skipped_dirs,
                                        scan.skipped_extra),
      NOT_IN_PARTITION: _capped(outside),
      'partition_subjects_missing': {k: _capped(v)
                                     for k, v in missing.items()},
      f'sequences_shorter_than_{SHORT}': _capped(short),
  }
  return kept_tasks, report


def format_report(report: dict[str, Any]) -> str:
  """A short human-readable summary of a conversion report."""
  lines = [f"sequences found: {report['sequences_found']}, written: "
           f"{report['sequences_written']}, frames written: "
           f"{report['frames_written']}"]
  for reason, n in report['frames_skipped'].items():
    lines.append(f'  frames skipped ({reason}): {n}')
  for reason, v in report['sequences_skipped'].items():
    if v['count']:
      lines.append(f"  sequences skipped ({reason}): {v['count']}, e.g. "
                   f"{v['items'][:3]}")
  for reason, v in report['files_ignored'].items():
    lines.append(f"  files ignored ({reason}): {v['count']}, e.g. "
                 f"{v['items'][:3]}")
  for reason, v in report.get('directories_skipped', {}).items():
    lines.append(f"  directories skipped ({reason}): {v['count']}, e.g. "
                 f"{v['items'][:3]}")
  for key in (NOT_IN_PARTITION, f'sequences_shorter_than_{SHORT}'):
    if report[key]['count']:
      lines.append(f"  {key}: {report[key]['count']}, e.g. "
                   f"{report[key]['items'][:3]}")
  return '\n'.join(lines)
