"""The pretreatment rules of the in-the-wild datasets (one per dataset).

`data_prep.pretreatment` holds OpenGait's generic rule (CASIA-B, OUMVLP and
Gait3D use it). The other datasets were prepared by their own scripts, and
a converted dataset must hold the frames those scripts give:

  grew       frames stored as read: no pixel-sum filter, no crop, no resize
             (GREW's silhouettes are already 64x64; a frame of another size
             is dropped as 'wrong_size: HxW'); all-black frames are kept.
  ccpg       the generic crop / resize / centre / cut, but with
             `cv2.INTER_AREA` and no pixel-sum filter (OpenGait's
             `organize_ccpg.py`); an all-black frame, on which that script
             crashes, is dropped here as 'dark_frame'.
  sustech1k  (the raw PNG tree) bicubic resize of the whole frame to 64x64:
             no crop, no filter (`pretreatment_SUSTech1K.py`).
  casia_e    any image format OpenCV reads (JPEG as released); a frame
             whose height is not 64 is resized bilinearly to 64x64, no
             crop, no filter; a sequence is kept only with more than 5
             frames (`extractor.py`), else all its frames are dropped as
             'too_few_frames' and the sequence is reported as such.

Each rule reads the frames in the given (sorted) order and returns a
`pretreatment.Pretreated`. Pixels are those of `cv2.imread(path,
cv2.IMREAD_GRAYSCALE)` (PNGs decoded by `png_gray` where it applies).
Unreadable files are dropped as 'corrupt_image', another format in a file
named '.png' as 'not_png_data: <format>', as in the generic rule.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import cv2
import numpy as np

from data_prep import png_gray
from data_prep import pretreatment

WRONG_SIZE = 'wrong_size'
TOO_FEW = 'too_few_frames'
CASIA_E_MIN_FRAMES = 6  # extractor.py keeps sequences with > 5 frames
# Raised with every change of one of these rules (cache file names).
RULE_VERSION = 1

Frame = tuple[np.ndarray | None, str]


def read_gray(path: str, png_only: bool = True) -> Frame:
  """(uint8 [H, W] frame, '') as `cv2.imread(path, IMREAD_GRAYSCALE)`
  reads it, or (None, reason).

  Args:
    path: image file.
    png_only: a file that is no PNG is dropped ('not_png_data: <format>'
      when OpenCV can read it, else 'corrupt_image').
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError:
    return None, pretreatment.CORRUPT
  is_png = data.startswith(png_gray.SIGNATURE)
  img = png_gray.decode(data) if is_png else None
  if img is None and data:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
  if img is None:
    return None, pretreatment.CORRUPT
  if png_only and not is_png:
    kind = pretreatment.other_format(data) or 'other'
    return None, f'{pretreatment.NOT_PNG_DATA}: {kind}'
  return img, ''


def _as_read(img: np.ndarray, size: int) -> Frame:
  if img.shape != (size, size):
    return None, f'{WRONG_SIZE}: {img.shape[0]}x{img.shape[1]}'
  return np.ascontiguousarray(img), ''


def _align_area(img: np.ndarray, size: int) -> Frame:
  rows = np.flatnonzero(img.max(axis=1))
  if rows.size == 0:
    return None, pretreatment.DARK
  return pretreatment.pretreat_rows(img[rows[0]:rows[-1] + 1], size,
                                    interpolation=cv2.INTER_AREA,
                                    dark_threshold=0)


def _resize_cubic(img: np.ndarray, size: int) -> Frame:
  return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC), ''


def _resize_linear_unless_sized(img: np.ndarray, size: int) -> Frame:
  if img.shape[0] != size:
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
  return _as_read(img, size)


def _per_frame(rule: Callable[[np.ndarray, int], Frame], png_only: bool,
               paths: Sequence[str], size: int
               ) -> tuple[list[np.ndarray], list[str], list[tuple[str, str]]]:
  """Applies a frame rule: (kept frames, their names, dropped ones)."""
  frames, names, skipped = [], [], []
  for path in paths:
    img, reason = read_gray(path, png_only)
    if img is not None:
      img, reason = rule(img, size)
    name = os.path.basename(path)
    if img is None:
      skipped.append((name, reason))
    else:
      frames.append(img)
      names.append(name)
  return frames, names, skipped


def _stack(frames: list[np.ndarray], size: int) -> np.ndarray:
  return (np.stack(frames) if frames
          else np.zeros((0, size, size), np.uint8))  # [T, size, size]


def _simple(rule: Callable[[np.ndarray, int], Frame], png_only: bool = True
            ) -> Callable[[Sequence[str], int], pretreatment.Pretreated]:
  def run(paths: Sequence[str], size: int) -> pretreatment.Pretreated:
    frames, _, skipped = _per_frame(rule, png_only, paths, size)
    return pretreatment.Pretreated(_stack(frames, size), skipped)
  return run


def pretreat_casia_e(paths: Sequence[str],
                     size: int = pretreatment.IMG_SIZE
                     ) -> pretreatment.Pretreated:
  """The CASIA-E rule (see the module doc), with the > 5 frames filter."""
  frames, names, skipped = _per_frame(_resize_linear_unless_sized, False,
                                      paths, size)
  if len(frames) < CASIA_E_MIN_FRAMES:
    # All its frames are dropped; the list stays in file order.
    order = {os.path.basename(p): i for i, p in enumerate(paths)}
    skipped = sorted(skipped + [(n, f'{TOO_FEW}: {len(frames)}')
                                for n in names], key=lambda s: order[s[0]])
    frames = []
  return pretreatment.Pretreated(_stack(frames, size), skipped)


# Rule name (`seq_cache.Task.kind`) -> fn(sorted frame paths, size).
RULES: dict[str, Callable[[Sequence[str], int], pretreatment.Pretreated]] = {
    'grew': _simple(_as_read),
    'ccpg': _simple(_align_area),
    'sustech1k': _simple(_resize_cubic),
    'casia_e': pretreat_casia_e,
}
