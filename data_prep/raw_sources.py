"""Finds the sequences of raw gait dataset trees.

Supported layouts (`scan(dataset, raw_dir)`):

  casia_b        <raw>/<sid 3 digits>/<type nm-01..06|bg-01..02|cl-01..02>/
                   <view 000, 018, ..., 180>/*.png
  oumvlp         <raw>/Silhouette_<view>-<seq>/<sid 5 digits>/*.png   (as
                   distributed), or the rearranged <raw>/<sid>/<seq>/<view>/
                   *.png (detected automatically); <seq> is 2 digits,
                   <view> one of `OUMVLP_VIEWS`
  opengait_pkl   <raw>/<id>/<type>/<view>/<one>.pkl holding an already
                   pretreated uint8 [T, 64, 64] array, with the names of
                   one of `PROTOCOL_NAMES` (CASIA-B, OUMVLP, or the
                   in-the-wild datasets of `raw_wild`)

A directory whose name does not fit the layout (a subject id that is not
one, an unknown sequence type or view, a folder inside a sequence folder) is
skipped with its whole subtree; files that cannot be frames (non-PNG files,
extra files between levels) and empty directories are left out too. None of
them stops the scan: they are returned in `ScanResult.skipped_dirs` and
`ScanResult.ignored` with their reasons, for the conversion report. Pickle
trees accept any names; `check_protocol_names` then skips the sequences
whose names the protocol does not have. `LayoutError` is raised only when
no frame file is found at all.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Iterator

CASIA_B_TYPES = tuple([f'nm-{i:02d}' for i in range(1, 7)]
                      + ['bg-01', 'bg-02', 'cl-01', 'cl-02'])
CASIA_B_VIEWS = tuple(f'{a:03d}' for a in range(0, 181, 18))
OUMVLP_VIEWS = ('000', '015', '030', '045', '060', '075', '090', '180',
                '195', '210', '225', '240', '255', '270')

# Reasons a file is left out (keys of the conversion report).
NOT_PNG = 'not_png'
UNEXPECTED_FILE = 'unexpected_file'
EMPTY_DIR = 'empty_dir'
EXTRA_PKL = 'extra_pkl'
# Reasons a directory (and everything under it) is skipped.
BAD_SUBJECT = 'bad_subject_id'
UNKNOWN_TYPE = 'unknown_type'
UNKNOWN_VIEW = 'unknown_view'
UNEXPECTED_DIR = 'unexpected_dir'


@dataclasses.dataclass(frozen=True)
class Names:
  """The names of one protocol, as full-match regular expressions."""
  subject: str
  type: str
  view: str


def _any_of(names: tuple[str, ...]) -> str:
  return '|'.join(re.escape(n) for n in names)


CCPG_STATUSES = ('U0_D0', 'U0_D0_BG', 'U1_D0', 'U1_D1', 'U2_D2', 'U3_D3',
                 'U0_D3')
SUSTECH1K_COVARIATES = ('nm', 'bg', 'cl', 'cr', 'ub', 'uf', 'oc', 'nt')
_FOLDER = r'[^/\\]+'  # any single folder name

# The names each protocol's sequences have (raw trees are checked against
# them, and pickle trees by `check_protocol_names`).
PROTOCOL_NAMES = {
    'casia_b': Names(r'\d{3}', _any_of(CASIA_B_TYPES),
                     _any_of(CASIA_B_VIEWS)),
    'oumvlp': Names(r'\d{5}', r'\d{2}', _any_of(OUMVLP_VIEWS)),
    'gait3d': Names(r'\d{4}', r'camid\d+_videoid\d+', r'seq\d+'),
    # Train subjects '<sid>train' (type 00), test subjects (gallery types
    # 01, 02) and the pseudo-subject 'probe' (type 03); view = sequence.
    'grew': Names(r'\d{5}train|\d{5}|probe', r'0[0-3]', r'[0-9A-Za-z]+'),
    'ccpg': Names(r'\d{3}', _any_of(CCPG_STATUSES), _FOLDER),
    'sustech1k': Names(r'\d{4}', rf'\d{{2}}-({_any_of(SUSTECH1K_COVARIATES)})',
                       r'\d{3}(-[a-z]+)?'),
    'casia_e': Names(r'\d{3,4}', r'[HL]-scene(1|2|3|3_s)-(nm|bg|cl)-\d+',
                     r'[0-9A-Za-z_]+'),
}


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
  """Sequences found in a raw tree, and the paths that were not used.

  Attributes:
    sequences: the sequences, sorted by key.
    ignored: (file or empty directory relative to the raw dir, reason).
    skipped_dirs: (directory relative to the raw dir, reason) of every
      directory skipped with its subtree.
    layout: the layout the scan expected (for messages).
    rule: the pretreatment rule of the sequences (`seq_cache.Task.kind`;
      '' = the layout's default, 'png' or 'pkl').
    ignored_extra: reason -> number of further ignored files not listed in
      `ignored` (scans of huge trees list a few per reason only).
    skipped_extra: the same for `skipped_dirs`.
  """
  sequences: list[SequenceRef]
  ignored: list[tuple[str, str]]
  skipped_dirs: list[tuple[str, str]] = dataclasses.field(
      default_factory=list)
  layout: str = ''
  rule: str = ''
  ignored_extra: dict[str, int] = dataclasses.field(default_factory=dict)
  skipped_extra: dict[str, int] = dataclasses.field(default_factory=dict)


def _entries(path: str) -> tuple[list[str], list[str]]:
  """Sorted (sub-directories, files) of `path`; hidden names are left out."""
  dirs, files = [], []
  with os.scandir(path) as it:
    for e in it:
      if e.name.startswith('.'):
        continue
      (dirs if e.is_dir() else files).append(e.name)
  return sorted(dirs), sorted(files)


def _png_frame(name: str) -> str | None:
  """None for a PNG frame, else the reason the file is not one."""
  if name.lower().endswith('.png') and name != 'gei.png':
    return None
  return NOT_PNG


class _Walker:
  """Walks fixed-depth trees, checking names and collecting skipped paths."""

  def __init__(self, root: str, layout: str):
    if not os.path.isdir(root):
      raise FileNotFoundError(f'raw dataset directory {root} does not exist')
    self.root = root
    self.layout = layout
    self.ignored: list[tuple[str, str]] = []
    self.skipped_dirs: list[tuple[str, str]] = []

  def rel(self, path: str) -> str:
    return os.path.relpath(path, self.root)

  def skip_dir(self, path: str, reason: str) -> None:
    self.skipped_dirs.append((self.rel(path), reason))

  def ignore(self, path: str, reason: str) -> None:
    self.ignored.append((self.rel(path), reason))

  def subdirs(self, path: str, pattern: str, reason: str,
              file_reason: Callable[[str], str] = lambda f: UNEXPECTED_FILE
              ) -> list[str]:
    """Sub-directory names that fully match `pattern`.

    The others are skipped with `reason`; files at this level are ignored
    with `file_reason(name)`.
    """
    dirs, files = _entries(path)
    for f in files:
      self.ignore(os.path.join(path, f), file_reason(f))
    if not dirs and path != self.root:
      self.ignore(path, EMPTY_DIR)
    kept = []
    for d in dirs:
      if re.fullmatch(pattern, d):
        kept.append(d)
      else:
        self.skip_dir(os.path.join(path, d), reason)
    return kept

  def frames(self, path: str,
             classify: Callable[[str], str | None] | None = None
             ) -> tuple[str, ...]:
    """Sorted frame files of a sequence directory; others are left out.

    `classify(name)` is None for a frame, else the reason the file is left
    out; by default the frames are the PNG files (but `gei.png`).
    """
    classify = classify or _png_frame
    dirs, files = _entries(path)
    for d in dirs:
      self.skip_dir(os.path.join(path, d), UNEXPECTED_DIR)
    frames = []
    for f in files:
      reason = classify(f)
      if reason is None:
        frames.append(os.path.join(path, f))
      else:
        self.ignore(os.path.join(path, f), reason)
    return tuple(frames)

  def result(self, seqs: list[SequenceRef]) -> ScanResult:
    return ScanResult(seqs, self.ignored, self.skipped_dirs, self.layout)


def _three_level(walker: _Walker, names: Names
                 ) -> Iterator[tuple[str, str, str, str]]:
  """(subject, type, view, path) of every <subject>/<type>/<view> folder."""
  root = walker.root
  for a in walker.subdirs(root, names.subject, BAD_SUBJECT):
    pa = os.path.join(root, a)
    for b in walker.subdirs(pa, names.type, UNKNOWN_TYPE):
      pb = os.path.join(pa, b)
      for c in walker.subdirs(pb, names.view, UNKNOWN_VIEW):
        yield a, b, c, os.path.join(pb, c)


def scan_casia_b(raw_dir: str) -> ScanResult:
  """Scans a CASIA-B tree <sid>/<type>/<view>/*.png."""
  layout = ('<raw>/<sid: 3 digits>/<type: nm-01..06|bg-01..02|cl-01..02>/'
            '<view: 000..180 in steps of 18>/*.png')
  walker = _Walker(raw_dir, layout)
  seqs = [SequenceRef(sid, typ, view, walker.frames(path))
          for sid, typ, view, path in _three_level(
              walker, PROTOCOL_NAMES['casia_b'])]
  return walker.result(seqs)


def scan_oumvlp(raw_dir: str) -> ScanResult:
  """Scans an OUMVLP tree, as distributed or rearranged (auto-detected)."""
  names = PROTOCOL_NAMES['oumvlp']
  dirs, _ = _entries(raw_dir) if os.path.isdir(raw_dir) else ([], [])
  if any(d.startswith('Silhouette_') for d in dirs):
    layout = ('<raw>/Silhouette_<view>-<seq: 2 digits>/<sid: 5 digits>/*.png '
              f'with view one of {"|".join(OUMVLP_VIEWS)}')
    walker = _Walker(raw_dir, layout)
    seqs = []
    for top in walker.subdirs(raw_dir, r'Silhouette_\d{3}-\d{2}',
                              UNEXPECTED_DIR):
      view, seq = top[len('Silhouette_'):].split('-')
      ptop = os.path.join(raw_dir, top)
      if not re.fullmatch(names.view, view):
        walker.skip_dir(ptop, UNKNOWN_VIEW)
        continue
      for sid in walker.subdirs(ptop, names.subject, BAD_SUBJECT):
        seqs.append(SequenceRef(sid, seq, view,
                                walker.frames(os.path.join(ptop, sid))))
    return walker.result(seqs)
  layout = ('<raw>/<sid: 5 digits>/<seq: 2 digits>/<view>/*.png with view '
            f'one of {"|".join(OUMVLP_VIEWS)} (or the distributed '
            'Silhouette_<view>-<seq>/<sid>/*.png)')
  walker = _Walker(raw_dir, layout)
  seqs = [SequenceRef(sid, seq, view, walker.frames(path))
          for sid, seq, view, path in _three_level(walker, names)]
  return walker.result(seqs)


def scan_opengait_pkl(raw_dir: str) -> ScanResult:
  """Scans an OpenGait pretreated tree <id>/<type>/<view>/<name>.pkl."""
  layout = '<raw>/<id>/<type>/<view>/<name>.pkl'
  walker = _Walker(raw_dir, layout)
  anything = r'[^/\\]+'
  seqs = []
  for sid, typ, view, path in _three_level(
      walker, Names(anything, anything, anything)):
    dirs, files = _entries(path)
    for d in dirs:
      walker.skip_dir(os.path.join(path, d), UNEXPECTED_DIR)
    pkls = [f for f in files if f.endswith('.pkl')]
    for f in files:
      if not f.endswith('.pkl'):
        walker.ignored.append((walker.rel(os.path.join(path, f)), NOT_PNG
                               if f.endswith('.png') else UNEXPECTED_FILE))
    # One pickle per sequence; if there are several, the one named after the
    # view (OpenGait's own naming), else the aligned silhouettes of
    # SUSTech1K's released tree, else the first in sorted order (CCPG's
    # '<view>-aligned-sils.pkl', as OpenGait's data_in_use picks it) is used
    # and the others are reported.
    sils = [f for f in pkls if SUSTECH1K_SILS.fullmatch(f)]
    chosen = ([f'{view}.pkl'] if f'{view}.pkl' in pkls
              else sils[:1] or pkls[:1])
    for f in pkls:
      if f not in chosen:
        walker.ignored.append((walker.rel(os.path.join(path, f)), EXTRA_PKL))
    seqs.append(SequenceRef(sid, typ, view,
                            tuple(os.path.join(path, f) for f in chosen)))
  return walker.result(seqs)


# The aligned silhouettes among SUSTech1K's 16 pickles of a sequence.
SUSTECH1K_SILS = re.compile(r'\d{2}-(?!sync-).+-Camera-Sils_aligned\.pkl')


def name_problem(protocol: str, ref: SequenceRef) -> str | None:
  """The reason the names of `ref` do not belong to `protocol`, or None."""
  names = PROTOCOL_NAMES[protocol]
  for value, pattern, reason in ((ref.subject, names.subject, BAD_SUBJECT),
                                 (ref.type, names.type, UNKNOWN_TYPE),
                                 (ref.view, names.view, UNKNOWN_VIEW)):
    if not re.fullmatch(pattern, value):
      return reason
  return None


def infer_protocol(refs: list[SequenceRef]) -> str:
  """The protocol whose names most of the sequences have (pkl trees).

  Raises:
    ValueError: no sequence, or as many for each protocol, fits.
  """
  fits = {p: sum(name_problem(p, r) is None for r in refs)
          for p in PROTOCOL_NAMES}
  best = max(fits.values()) if fits else 0
  winners = [p for p, n in fits.items() if n == best]
  if best == 0 or len(winners) > 1:
    types = sorted({r.type for r in refs})
    raise ValueError(
        f'Cannot infer the protocol: sequences whose names fit each one: '
        f'{fits}; types {types[:8]}. Pass --protocol and --partition')
  return winners[0]


def check_protocol_names(result: ScanResult, protocol: str) -> ScanResult:
  """`result` without the sequences whose names `protocol` does not have.

  Meant for pickle trees (<id>/<type>/<view>), whose scan accepts any
  name: each skipped directory (the subject, type or view folder whose name
  is wrong) is added to `skipped_dirs` once.
  """
  kept, skipped, seen = [], list(result.skipped_dirs), set()
  for ref in result.sequences:
    reason = name_problem(protocol, ref)
    if reason is None:
      kept.append(ref)
      continue
    depth = (BAD_SUBJECT, UNKNOWN_TYPE, UNKNOWN_VIEW).index(reason) + 1
    path = os.path.join(*(ref.subject, ref.type, ref.view)[:depth])
    if path not in seen:
      seen.add(path)
      skipped.append((path, reason))
  return dataclasses.replace(result, sequences=kept, skipped_dirs=skipped)


SCANNERS = {
    'casia_b': scan_casia_b,
    'oumvlp': scan_oumvlp,
    'opengait_pkl': scan_opengait_pkl,
}


def scan(dataset: str, raw_dir: str, scanners=None) -> ScanResult:
  """Scans `raw_dir` with the layout of `dataset` (a key of `scanners`).

  Args:
    dataset: 'casia_b', 'oumvlp' or 'opengait_pkl' (or a key of
      `scanners`).
    raw_dir: root of the raw tree.
    scanners: name -> fn(raw_dir) -> ScanResult (default `SCANNERS`;
      `raw_wild.scan` passes all layouts).

  Returns:
    The sequences, sorted by key, and the paths left out with their reasons.

  Raises:
    ValueError: unknown dataset name.
    FileNotFoundError: `raw_dir` does not exist.
    LayoutError: the tree holds no frame file in the expected layout.
  """
  scanners = SCANNERS if scanners is None else scanners
  if dataset not in scanners:
    raise ValueError(f'Unknown dataset {dataset!r}; valid: {sorted(scanners)}')
  result = scanners[dataset](os.fspath(raw_dir))
  result.sequences.sort(key=lambda s: s.key)
  if not any(s.files for s in result.sequences):
    hint = ''
    if any(p.endswith('.pkl') for p, _ in result.ignored):
      hint = ' (it holds .pkl files: use --dataset=opengait_pkl)'
    skipped = ', '.join(f'{p} ({r})' for p, r in result.skipped_dirs[:5])
    if skipped:
      more = len(result.skipped_dirs) - 5
      skipped = (f'; skipped directories: {skipped}'
                 + (f' and {more} more' if more > 0 else ''))
    raise LayoutError(f'No frame files found under {raw_dir}{hint}; '
                      f'expected the {dataset} layout {result.layout}'
                      f'{skipped}')
  return result
