"""Finds the sequences of the in-the-wild datasets' raw trees.

Layouts (`scan(dataset, raw_dir)`; `raw_sources` has CASIA-B, OUMVLP and
OpenGait pickle trees, `scan` here covers all of them):

  gait3d     <raw>/2D_Silhouettes/<id 4 digits>/camid<C>_videoid<V>/seq<K>/
               human_crop_f<frame>.png; <raw> may also be the 2D_Silhouettes
               folder itself. The other modalities (3D_SMPLs, 2D_Poses) are
               skipped and counted. Names (id, camid<C>_videoid<V>, seq<K>).
  grew       <raw>/train/<sid 5 digits>/<seq>/, <raw>/test/gallery/<sid>/
               <seq>/, <raw>/test/probe/<seq>/ with frames <5 digits>.png.
               Names as OpenGait's `rearrange_GREW.py` gives them:
               ('<sid>train', '00', seq), (sid, '01' | '02', seq) and
               ('probe', '03', seq). The gallery types are numbered in the
               SORTED order of a subject's sequence names (deterministic;
               OpenGait numbers them in directory-listing order, which
               depends on the file system, so its 01/02 may be swapped).
               Skipped and counted: the distractor set (<raw>/distractor(s)/),
               the per-frame '<frame>_2d_pose.txt' / '_3d_pose.txt' files
               and the '<seq>_gei.png' images beside the sequence folders.
  ccpg       <raw>/CCPG_G_SIL/<id 3 digits>/<status>/<view>/<frame>.png, or
               <raw> = CCPG_G_SIL; status one of `CCPG_STATUSES`; the view
               keeps its full folder name (evaluation takes the part before
               the first '_'). The RGB tree is skipped and counted.
  sustech1k  the released pickle tree <raw>/<id 4 digits>/<NN>-<cov>/<view>/
               with 16 pickles, of which '<NN>-<view>-Camera-Sils_aligned.pkl'
               is used (found by name: the number shifts when modalities
               are missing), or the raw tree <raw>/<id>/<NN>-<cov>/<view>/
               Sils_aligned/*.png (detected automatically). Views contain
               '-' ('000-far'). Sequences without aligned silhouettes are
               reported ('missing_sils_aligned').
  casia_e    the extracted archives <raw>/forTrain/<id>/<H|L>/<scene>/
               <nm|bg|cl>/<view>/<num>/*.jpg (or <raw> = forTrain); type
               '<H|L>-<scene>-<cond>-<num>'. The zip and tar archives are
               not read directly: extract them first.

As in `raw_sources`, directories with names outside the layout and files
that are not frames are skipped with a reason, never stopping the scan.
Each layout's pretreatment rule is returned in `ScanResult.rule` (see
`pretreat_wild`). For trees of hundreds of thousands of sequences (GREW:
128k sequences, 3 files per frame) only the first `LIST_LIMIT` paths per
reason are kept; the others are counted (`ScanResult.ignored_extra`).
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from data_prep import raw_sources
from data_prep.raw_sources import PROTOCOL_NAMES, SequenceRef, ScanResult

LIST_LIMIT = 200
CCPG_STATUSES = raw_sources.CCPG_STATUSES
BAD_SUBJECT = raw_sources.BAD_SUBJECT
UNKNOWN_TYPE = raw_sources.UNKNOWN_TYPE
UNKNOWN_VIEW = raw_sources.UNKNOWN_VIEW
UNEXPECTED_DIR = raw_sources.UNEXPECTED_DIR
UNEXPECTED_FILE = raw_sources.UNEXPECTED_FILE
NOT_PNG = raw_sources.NOT_PNG
# Reasons of this module (keys of the conversion report).
OTHER_MODALITY = 'other_modality'  # SMPL, pose, RGB, LiDAR, flow data
DISTRACTOR = 'distractor'
GEI = 'gei_image'
POSE_FILE = 'pose_file'
BAD_SEQUENCE = 'bad_sequence_name'
NOT_IMAGE = 'not_image'
MISSING_SILS = 'missing_sils_aligned'


class _Capped(list):
  """A list of (path, reason) that keeps `LIST_LIMIT` items per reason and
  counts the rest in `extra`."""

  def __init__(self):
    super().__init__()
    self.seen: dict[str, int] = {}
    self.extra: dict[str, int] = {}

  def append(self, item: tuple[str, str]) -> None:
    reason = item[1]
    self.seen[reason] = self.seen.get(reason, 0) + 1
    if self.seen[reason] <= LIST_LIMIT:
      super().append(item)
    else:
      self.extra[reason] = self.extra.get(reason, 0) + 1


class _Walker(raw_sources._Walker):  # pylint: disable=protected-access
  """`raw_sources._Walker` with capped lists of skipped paths."""

  def __init__(self, root: str, layout: str):
    super().__init__(root, layout)
    self.ignored = _Capped()
    self.skipped_dirs = _Capped()

  def result(self, seqs: list[SequenceRef], rule: str = '') -> ScanResult:
    return ScanResult(seqs, list(self.ignored), list(self.skipped_dirs),
                      self.layout, rule, dict(self.ignored.extra),
                      dict(self.skipped_dirs.extra))


def _inner(walker: _Walker, name: str) -> str:
  """`<root>/<name>` when the root holds that folder (its other folders are
  skipped as other modalities), else the root itself."""
  dirs, files = raw_sources._entries(walker.root)  # pylint: disable=protected-access
  if name not in dirs:
    return walker.root
  for d in dirs:
    if d != name:
      walker.skip_dir(os.path.join(walker.root, d), OTHER_MODALITY)
  for f in files:
    walker.ignore(os.path.join(walker.root, f), UNEXPECTED_FILE)
  return os.path.join(walker.root, name)


def _levels(walker: _Walker, top: str, *levels: tuple[str, str]
            ) -> Iterator[tuple[list[str], str]]:
  """(names, path) of every folder `len(levels)` levels below `top` whose
  names match the (pattern, reason) of each level."""
  if not levels:
    yield [], top
    return
  (pattern, reason), rest = levels[0], levels[1:]
  for d in walker.subdirs(top, pattern, reason):
    for names, path in _levels(walker, os.path.join(top, d), *rest):
      yield [d] + names, path


def _three(protocol: str) -> tuple[tuple[str, str], ...]:
  names = PROTOCOL_NAMES[protocol]
  return ((names.subject, BAD_SUBJECT), (names.type, UNKNOWN_TYPE),
          (names.view, UNKNOWN_VIEW))


def scan_gait3d(raw_dir: str) -> ScanResult:
  """Scans Gait3D's 2D_Silhouettes/<id>/<camid_videoid>/<seq>/*.png."""
  walker = _Walker(raw_dir, '<raw>/2D_Silhouettes/<id: 4 digits>/'
                   'camid<C>_videoid<V>/seq<K>/human_crop_f<frame>.png')
  top = _inner(walker, '2D_Silhouettes')
  seqs = [SequenceRef(*names, walker.frames(path))
          for names, path in _levels(walker, top, *_three('gait3d'))]
  return walker.result(seqs, 'png')


def _grew_file(name: str) -> str | None:
  """None for a GREW frame, else why the file is left out."""
  if name.endswith('_gei.png'):
    return GEI
  if name.endswith('_pose.txt'):
    return POSE_FILE
  return None if name.lower().endswith('.png') else NOT_PNG


def _grew_beside(name: str) -> str:
  """The reason a file beside GREW's sequence folders is left out."""
  return GEI if name.endswith('_gei.png') else UNEXPECTED_FILE


def scan_grew(raw_dir: str) -> ScanResult:
  """Scans GREW's train/, test/gallery/, test/probe/ (see the module doc)."""
  walker = _Walker(raw_dir, '<raw>/train/<sid: 5 digits>/<seq>/<frame>.png, '
                   '<raw>/test/gallery/<sid>/<seq>/*.png, <raw>/test/probe/'
                   '<seq>/*.png')
  seq_name = PROTOCOL_NAMES['grew'].view
  seqs = []

  def sequences(path: str) -> list[str]:
    return walker.subdirs(path, seq_name, BAD_SEQUENCE, _grew_beside)

  def add(subject: str, typ: str, path: str) -> None:
    seqs.append(SequenceRef(subject, typ, os.path.basename(path),
                            walker.frames(path, _grew_file)))

  tops = walker.subdirs(raw_dir, r'train|test|distractors?', UNEXPECTED_DIR)
  root = walker.root
  if 'train' in tops:
    for sid in walker.subdirs(os.path.join(root, 'train'), r'\d{5}',
                              BAD_SUBJECT):
      path = os.path.join(root, 'train', sid)
      for seq in sequences(path):
        add(f'{sid}train', '00', os.path.join(path, seq))
  if 'test' in tops:
    test = os.path.join(root, 'test')
    parts = walker.subdirs(test, r'gallery|probe', UNEXPECTED_DIR)
    if 'gallery' in parts:
      for sid in walker.subdirs(os.path.join(test, 'gallery'), r'\d{5}',
                                BAD_SUBJECT):
        path = os.path.join(test, 'gallery', sid)
        for i, seq in enumerate(sequences(path)):  # sorted names
          add(sid, f'{i + 1:02d}', os.path.join(path, seq))
    if 'probe' in parts:
      path = os.path.join(test, 'probe')
      for seq in sequences(path):
        add('probe', '03', os.path.join(path, seq))
  for top in tops:
    if top.startswith('distractor'):
      dirs, files = raw_sources._entries(os.path.join(root, top))  # pylint: disable=protected-access
      for d in dirs:
        walker.skip_dir(os.path.join(root, top, d), DISTRACTOR)
      for f in files:
        walker.ignore(os.path.join(root, top, f), DISTRACTOR)
  return walker.result(seqs, 'grew')


def scan_ccpg(raw_dir: str) -> ScanResult:
  """Scans CCPG's CCPG_G_SIL/<id>/<status>/<view>/*.png."""
  walker = _Walker(raw_dir, '<raw>/CCPG_G_SIL/<id: 3 digits>/<status: '
                   f'{"|".join(CCPG_STATUSES)}>/<view>/<frame>.png')
  top = _inner(walker, 'CCPG_G_SIL')
  seqs = [SequenceRef(*names, walker.frames(path))
          for names, path in _levels(walker, top, *_three('ccpg'))]
  return walker.result(seqs, 'ccpg')


def scan_sustech1k(raw_dir: str) -> ScanResult:
  """Scans SUSTech1K's released pickle tree or its raw PNG tree."""
  walker = _Walker(raw_dir, '<raw>/<id: 4 digits>/<NN>-<cov>/<view>/ holding '
                   '<NN>-<view>-Camera-Sils_aligned.pkl (released pkl tree) '
                   'or Sils_aligned/*.png (raw tree)')
  found = [(names, path, raw_sources._entries(path))  # pylint: disable=protected-access
           for names, path in _levels(walker, walker.root,
                                      *_three('sustech1k'))]
  n_raw = sum('Sils_aligned' in dirs for _, _, (dirs, _) in found)
  n_pkl = sum(any(f.endswith('.pkl') for f in files)
              for _, _, (_, files) in found)
  raw_tree = n_raw > n_pkl
  seqs = []
  for (sid, typ, view), path, (dirs, files) in found:
    wanted = re.compile(rf'\d{{2}}-{re.escape(view)}-Camera-Sils_aligned\.pkl')
    chosen = ()
    for f in files:
      if not raw_tree and wanted.fullmatch(f) and not chosen:
        chosen = (os.path.join(path, f),)
      elif f.endswith('.pkl'):
        walker.ignore(os.path.join(path, f), OTHER_MODALITY)
      else:
        walker.ignore(os.path.join(path, f), UNEXPECTED_FILE)
    for d in dirs:
      if raw_tree and d == 'Sils_aligned':
        chosen = walker.frames(os.path.join(path, d))
      else:
        walker.skip_dir(os.path.join(path, d),
                        OTHER_MODALITY if raw_tree else UNEXPECTED_DIR)
    has_sils = 'Sils_aligned' in dirs if raw_tree else bool(chosen)
    if has_sils:
      seqs.append(SequenceRef(sid, typ, view, chosen))
    else:
      walker.skip_dir(path, MISSING_SILS)
  return walker.result(seqs, 'sustech1k' if raw_tree else 'pkl')


def _casia_e_file(name: str) -> str | None:
  return (None if name.lower().endswith(('.jpg', '.jpeg', '.png'))
          else NOT_IMAGE)


def scan_casia_e(raw_dir: str) -> ScanResult:
  """Scans CASIA-E's forTrain/<id>/<H|L>/<scene>/<cond>/<view>/<num>/."""
  walker = _Walker(raw_dir, '<raw>/forTrain/<id>/<H|L>/<scene1|scene2|scene3|'
                   'scene3_s>/<nm|bg|cl>/<view>/<num>/*.jpg')
  top = _inner(walker, 'forTrain')
  names = PROTOCOL_NAMES['casia_e']
  seqs = []
  for (sid, hl, scene, cond, view, num), path in _levels(
      walker, top, (names.subject, BAD_SUBJECT), (r'[HL]', UNKNOWN_TYPE),
      (r'scene1|scene2|scene3|scene3_s', UNKNOWN_TYPE),
      (r'nm|bg|cl', UNKNOWN_TYPE), (names.view, UNKNOWN_VIEW),
      (r'\d+', UNKNOWN_TYPE)):
    seqs.append(SequenceRef(sid, f'{hl}-{scene}-{cond}-{num}', view,
                            walker.frames(path, _casia_e_file)))
  return walker.result(seqs, 'casia_e')


SCANNERS = {
    'gait3d': scan_gait3d,
    'grew': scan_grew,
    'ccpg': scan_ccpg,
    'sustech1k': scan_sustech1k,
    'casia_e': scan_casia_e,
}
# Every layout `data_prep.convert` reads.
ALL_SCANNERS = {**raw_sources.SCANNERS, **SCANNERS}


def scan(dataset: str, raw_dir: str) -> ScanResult:
  """`raw_sources.scan` over all layouts (`ALL_SCANNERS`)."""
  return raw_sources.scan(dataset, raw_dir, ALL_SCANNERS)
