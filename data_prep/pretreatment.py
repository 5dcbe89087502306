"""Silhouette pretreatment: raw frames to centred 64x64 uint8 crops.

The rule is the one every OpenGait-family result is computed with, so that
converted datasets are interchangeable with the reference pipeline:

1. a frame whose pixel sum is <= 10000 is dropped ('dark');
2. the rows from the first to the last row with foreground are kept;
3. the crop is resized (bicubic) to height `size` and width
   int(size * w / h);
4. the x-centre is the first column where the cumulative column sum exceeds
   half of the total; a frame whose centre is column 0 is dropped;
5. a window of `size` columns around the centre is cut; when it would reach
   the image border, `size / 2` zero columns are padded on both sides first.

Only NumPy and OpenCV are needed, so worker processes start quickly. Frames
are read with `png_gray` where it applies (the same pixels as `cv2.imread`;
a 320x240 silhouette sequence is pretreated 1.6x faster, 3.5x with the
optional `deflate` package) and with OpenCV otherwise. A file that holds
another image format (a JPEG named '.png') is dropped and reported as such.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import cv2
import numpy as np

from data_prep import png_gray

DARK_THRESHOLD = 10000  # frames with pixel sum <= this are dropped
IMG_SIZE = 64
# Raised with every change of the rules that can change what is kept for the
# same files; part of the cache file names of `data_prep.convert`.
RULE_VERSION = 2

# Reasons a frame is dropped (keys of the conversion report).
DARK = 'dark_frame'
NO_CENTRE = 'no_x_centre'
TOO_NARROW = 'too_narrow'
CORRUPT = 'corrupt_image'
NOT_PNG_DATA = 'not_png_data'  # another image format in a .png file

# File signatures of image formats OpenCV reads besides PNG.
_OTHER_FORMATS = (
    (b'\xff\xd8\xff', 'jpeg'),
    (b'BM', 'bmp'),
    (b'GIF8', 'gif'),
    (b'II*\0', 'tiff'),
    (b'MM\0*', 'tiff'),
    (b'RIFF', 'webp'),
    (b'\0\0\0\x0cjP  ', 'jpeg2000'),
    (b'\xff\x4f\xff\x51', 'jpeg2000'),
)


def other_format(data: bytes) -> str | None:
  """The format of a non-PNG image file ('jpeg', 'bmp', ...) from its
  first bytes, or None when it is a PNG or in no format known here."""
  for signature, name in _OTHER_FORMATS:
    if data.startswith(signature):
      return name
  return None


def pretreat_frame(img: np.ndarray,
                   size: int = IMG_SIZE) -> tuple[np.ndarray | None, str]:
  """Crops, resizes and centres one grayscale silhouette.

  Args:
    img: uint8 [H, W] grayscale frame.
    size: output height and width.

  Returns:
    (uint8 [size, size] frame, '') or (None, reason) when it is dropped.
  """
  rows = np.flatnonzero(img.max(axis=1))
  if rows.size == 0:
    return None, DARK
  return pretreat_rows(img[rows[0]:rows[-1] + 1], size)


def pretreat_rows(img: np.ndarray, size: int, *,
                   interpolation: int = cv2.INTER_CUBIC,
                   dark_threshold: int = DARK_THRESHOLD
                   ) -> tuple[np.ndarray | None, str]:
  """`pretreat_frame` of the rows first..last with foreground of a frame.

  All other rows are zero, so the pixel sum of the frame is that of `img`.
  `interpolation` and `dark_threshold` (frames with pixel sum <= it are
  dropped as 'dark') let other datasets' variants of the rule reuse it
  (CCPG: `cv2.INTER_AREA` and 0, see `data_prep.pretreat_wild`).
  """
  if img.shape[0] == 0 or cv2.sumElems(img)[0] <= dark_threshold:
    return None, DARK
  h, w = img.shape
  new_w = int(size * (w / h))
  if new_w < 1:
    return None, TOO_NARROW
  img = cv2.resize(img, (new_w, size), interpolation=interpolation)
  col_sums = cv2.reduce(img, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)  # [1, new_w]
  cols = np.cumsum(col_sums.ravel(), dtype=np.int64)  # [new_w]
  centre = int(np.argmax(cols > cols[-1] / 2))
  if centre == 0:  # also covers "no column passes half" (all-zero crop)
    return None, NO_CENTRE
  half = size // 2
  left, right = centre - half, centre + half
  if left > 0 and right < new_w:
    return img[:, left:right].copy(), ''
  # The window reaches the border: `half` zero columns are padded on both
  # sides first, which leaves zeros wherever it is outside the image.
  out = np.zeros((size, 2 * half), np.uint8)  # [size, size]
  lo, hi = max(left, 0), min(right, new_w)
  out[:, lo - left:hi - left] = img[:, lo:hi]
  return out, ''


def read_foreground_rows(path: str, fast: bool = True) -> np.ndarray | None:
  """The rows first..last with foreground of a frame file (uint8 [h, W],
  h = 0 when it is all zero), as `cv2.imread(path, IMREAD_GRAYSCALE)`
  decodes it; None when it cannot be read.

  Plain 8-bit grayscale PNGs are decoded by `png_gray` (the same pixels,
  faster) unless `fast` is False; other files by OpenCV.
  """
  rows = _png_gray_rows(path) if fast else None
  return _opencv_rows(path) if rows is None else rows


def _png_gray_rows(path: str) -> np.ndarray | None:
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError:
    return None
  return png_gray.decode_foreground_rows(data)


def _opencv_rows(path: str) -> np.ndarray | None:
  img = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
  if img is None:
    return None
  rows = np.flatnonzero(img.max(axis=1))
  return img[rows[0]:rows[-1] + 1] if rows.size else img[:0]


@dataclasses.dataclass
class Pretreated:
  """A pretreated sequence.

  Attributes:
    frames: uint8 [T, size, size] kept frames, in file order (T may be 0).
    skipped: (file name, reason) of every dropped frame.
  """
  frames: np.ndarray
  skipped: list[tuple[str, str]]


def pretreat_files(paths: Sequence[str], size: int = IMG_SIZE) -> Pretreated:
  """Reads and pretreats the frame files of one sequence, in the given order.

  Unreadable files are dropped with reason 'corrupt_image'; files that hold
  another image format (e.g. a JPEG named '.png') with reason
  'not_png_data: <format>'. The pixels are those of `cv2.imread(path,
  cv2.IMREAD_GRAYSCALE)` (see `read_foreground_rows`); once a frame that
  OpenCV reads is not a plain grayscale PNG, the rest of the sequence is
  read with OpenCV directly.

  Args:
    paths: image files (PNG), already sorted.
    size: output frame size.

  Returns:
    The kept frames and the per-frame skip reasons.
  """
  frames, skipped = [], []
  fast = True
  for path in paths:
    try:
      with open(path, 'rb') as f:
        data = f.read()
    except OSError:
      data = b''
    if not data.startswith(png_gray.SIGNATURE):
      # Not a PNG: another image format (reported as such), or damaged.
      kind = other_format(data)
      if kind is None and data and _opencv_rows(path) is not None:
        kind = 'other'
      skipped.append((os.path.basename(path),
                      f'{NOT_PNG_DATA}: {kind}' if kind else CORRUPT))
      continue
    rows = png_gray.decode_foreground_rows(data) if fast else None
    if rows is None:
      rows = _opencv_rows(path)
      # OpenCV read a file that png_gray does not decode: this sequence was
      # written in another form, so do not try png_gray on the rest.
      fast = fast and rows is None
    if rows is None:
      frame, reason = None, CORRUPT
    else:
      frame, reason = pretreat_rows(rows, size)
    if frame is None:
      skipped.append((os.path.basename(path), reason))
    else:
      frames.append(frame)
  out = (np.stack(frames) if frames
         else np.zeros((0, size, size), np.uint8))  # [T, size, size]
  return Pretreated(out, skipped)
