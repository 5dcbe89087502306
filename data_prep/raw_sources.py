"""Finds the sequences of raw gait dataset trees.

Supported layouts (`scan(dataset, raw_dir)`):

  casia_b        <raw>/<sid 3 digits>/<type nm-01..06|bg-01..02|cl-01..02>/
                   <view 3 digits>/*.png
  oumvlp         <raw>/Silhouette_<view>-<seq>/<sid 5 digits>/*.png   (as
                   distributed), or the rearranged <raw>/<sid>/<seq>/<view>/
                   *.png (detected automatically)
  opengait_pkl   <raw>/<id>/<type>/<view>/<one>.pkl holding an already
                   pretreated uint8 [T, 64, 64] array

A directory name that breaks the layout raises `LayoutError` naming the path
and the expected pattern. Files that cannot be frames (non-PNG files, extra
files between levels) and empty directories do not stop the scan: they are
returned in `ScanResult.ignored` for the conversion report.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator

CASIA_B_TYPES = tuple([f'nm-{i:02d}' for i in range(1, 7)]
                      + ['bg-01', 'bg-02', 'cl-01', 'cl-02'])
OUMVLP_VIEWS = ('000', '015', '030', '045', '060', '075', '090', '180',
                '195', '210', '225', '240', '255', '270')

NOT_PNG = 'not_png'
UNEXPECTED_FILE = 'unexpected_file'
EMPTY_DIR = 'empty_dir'
EXTRA_PKL = 'extra_pkl'


class LayoutError(ValueError):
  """The raw tree does not have the expected layout."""


@dataclasses.dataclass(frozen=True)
class SequenceRef:
  """One sequence of a raw tree.

  Attributes:
    subject: subject id ('001', '00001').
    type: CASIA-B type ('nm-01') or OUMVLP sequence ('00').
    view: view ('090').
    files: sorted frame files (PNG), or a single pickle (pkl trees).
  """
  subject: str
  type: str
  view: str
  files: tuple[str, ...]

  @property
  def key(self) -> str:
    return f'{self.subject}-{self.type}-{self.view}'


@dataclasses.dataclass
class ScanResult:
  """Sequences found in a raw tree, and the paths that were not used."""
  sequences: list[SequenceRef]
  ignored: list[tuple[str, str]]  # (path relative to raw dir, reason)


def _entries(path: str) -> tuple[list[str], list[str]]:
  """Sorted (sub-directories, files) of `path`; hidden names are left out."""
  dirs, files = [], []
  with os.scandir(path) as it:
    for e in it:
      if e.name.startswith('.'):
        continue
      (dirs if e.is_dir() else files).append(e.name)
  return sorted(dirs), sorted(files)


class _Walker:
  """Walks fixed-depth trees, checking names and collecting ignored paths."""

  def __init__(self, root: str, layout: str):
    if not os.path.isdir(root):
      raise FileNotFoundError(f'raw dataset directory {root} does not exist')
    self.root = root
    self.layout = layout
    self.ignored: list[tuple[str, str]] = []

  def rel(self, path: str) -> str:
    return os.path.relpath(path, self.root)

  def subdirs(self, path: str, pattern: str, what: str) -> list[str]:
    """Checked sub-directory names; files at this level are ignored."""
    dirs, files = _entries(path)
    for f in files:
      self.ignored.append((self.rel(os.path.join(path, f)), UNEXPECTED_FILE))
    for d in dirs:
      if not re.fullmatch(pattern, d):
        raise LayoutError(
            f'Unexpected directory {os.path.join(path, d)}: expected a '
            f'{what} (pattern {pattern!r}); layout {self.layout}')
    if not dirs and path != self.root:
      self.ignored.append((self.rel(path), EMPTY_DIR))
    return dirs

  def frames(self, path: str) -> tuple[str, ...]:
    """Sorted PNG files of a sequence directory; others are ignored."""
    dirs, files = _entries(path)
    for d in dirs:
      raise LayoutError(
          f'Unexpected directory {os.path.join(path, d)}: expected only '
          f'frame files in a sequence directory; layout {self.layout}')
    pngs = []
    for f in files:
      if f.lower().endswith('.png') and f != 'gei.png':
        pngs.append(os.path.join(path, f))
      else:
        self.ignored.append((self.rel(os.path.join(path, f)), NOT_PNG))
    return tuple(pngs)


def _three_level(walker: _Walker, patterns: tuple[str, str, str],
                 what: tuple[str, str, str]) -> Iterator[tuple[str, ...]]:
  root = walker.root
  for a in walker.subdirs(root, patterns[0], what[0]):
    pa = os.path.join(root, a)
    for b in walker.subdirs(pa, patterns[1], what[1]):
      pb = os.path.join(pa, b)
      for c in walker.subdirs(pb, patterns[2], what[2]):
        yield a, b, c, os.path.join(pb, c)


def scan_casia_b(raw_dir: str) -> ScanResult:
  """Scans a CASIA-B tree <sid>/<type>/<view>/*.png."""
  layout = '<raw>/<sid: 3 digits>/<type: nm-01..06|bg-01..02|cl-01..02>/' \
           '<view: 3 digits>/*.png'
  walker = _Walker(raw_dir, layout)
  type_pattern = '|'.join(CASIA_B_TYPES)
  seqs = []
  for sid, typ, view, path in _three_level(
      walker, (r'\d{3}', type_pattern, r'\d{3}'),
      ('subject id', 'sequence type', 'view')):
    seqs.append(SequenceRef(sid, typ, view, walker.frames(path)))
  return ScanResult(seqs, walker.ignored)


def scan_oumvlp(raw_dir: str) -> ScanResult:
  """Scans an OUMVLP tree, as distributed or rearranged (auto-detected)."""
  dirs, _ = _entries(raw_dir) if os.path.isdir(raw_dir) else ([], [])
  if any(d.startswith('Silhouette_') for d in dirs):
    layout = '<raw>/Silhouette_<view: 3 digits>-<seq: 2 digits>/' \
             '<sid: 5 digits>/*.png'
    walker = _Walker(raw_dir, layout)
    seqs = []
    for top in walker.subdirs(raw_dir, r'Silhouette_\d{3}-\d{2}',
                              'Silhouette_<view>-<seq> folder'):
      view, seq = top[len('Silhouette_'):].split('-')
      ptop = os.path.join(raw_dir, top)
      for sid in walker.subdirs(ptop, r'\d{5}', 'subject id'):
        seqs.append(SequenceRef(sid, seq, view,
                                walker.frames(os.path.join(ptop, sid))))
    seqs.sort(key=lambda s: s.key)
    return ScanResult(seqs, walker.ignored)
  layout = '<raw>/<sid: 5 digits>/<seq: 2 digits>/<view: 3 digits>/*.png ' \
           '(or Silhouette_<view>-<seq>/<sid>/*.png)'
  walker = _Walker(raw_dir, layout)
  seqs = [SequenceRef(sid, seq, view, walker.frames(path))
          for sid, seq, view, path in _three_level(
              walker, (r'\d{5}', r'\d{2}', r'\d{3}'),
              ('subject id', 'sequence number', 'view'))]
  return ScanResult(seqs, walker.ignored)


def scan_opengait_pkl(raw_dir: str) -> ScanResult:
  """Scans an OpenGait pretreated tree <id>/<type>/<view>/<name>.pkl."""
  layout = '<raw>/<id>/<type>/<view>/<name>.pkl'
  walker = _Walker(raw_dir, layout)
  name = r'[^/\\]+'
  seqs = []
  for sid, typ, view, path in _three_level(
      walker, (name, name, name), ('subject id', 'type', 'view')):
    dirs, files = _entries(path)
    if dirs:
      raise LayoutError(f'Unexpected directory {os.path.join(path, dirs[0])}'
                        f': expected only .pkl files; layout {layout}')
    pkls = [f for f in files if f.endswith('.pkl')]
    for f in files:
      if not f.endswith('.pkl'):
        walker.ignored.append((walker.rel(os.path.join(path, f)), NOT_PNG
                               if f.endswith('.png') else UNEXPECTED_FILE))
    # One pickle per sequence; if there are several, the one named after the
    # view (OpenGait's own naming) is used and the others are reported.
    chosen = [f'{view}.pkl'] if f'{view}.pkl' in pkls else pkls[:1]
    for f in pkls:
      if f not in chosen:
        walker.ignored.append((walker.rel(os.path.join(path, f)), EXTRA_PKL))
    seqs.append(SequenceRef(sid, typ, view,
                            tuple(os.path.join(path, f) for f in chosen)))
  return ScanResult(seqs, walker.ignored)


SCANNERS = {
    'casia_b': scan_casia_b,
    'oumvlp': scan_oumvlp,
    'opengait_pkl': scan_opengait_pkl,
}


def scan(dataset: str, raw_dir: str) -> ScanResult:
  """Scans `raw_dir` with the layout of `dataset` (a key of `SCANNERS`).

  Args:
    dataset: 'casia_b', 'oumvlp' or 'opengait_pkl'.
    raw_dir: root of the raw tree.

  Returns:
    The sequences, sorted by key, and the ignored paths.

  Raises:
    ValueError: unknown dataset name.
    LayoutError: the tree does not follow the layout, or holds no frame file.
  """
  if dataset not in SCANNERS:
    raise ValueError(f'Unknown dataset {dataset!r}; valid: {sorted(SCANNERS)}')
  result = SCANNERS[dataset](os.fspath(raw_dir))
  result.sequences.sort(key=lambda s: s.key)
  if not any(s.files for s in result.sequences):
    hint = ''
    if any(p.endswith('.pkl') for p, _ in result.ignored):
      hint = ' (it holds .pkl files: use --dataset=opengait_pkl)'
    raise LayoutError(f'No frame files found under {raw_dir}{hint}; '
                      f'expected the {dataset} layout')
  return result
