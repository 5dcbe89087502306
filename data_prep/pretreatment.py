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

Only NumPy and OpenCV are needed, so worker processes start quickly.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import cv2
import numpy as np

DARK_THRESHOLD = 10000  # frames with pixel sum <= this are dropped
IMG_SIZE = 64

# Reasons a frame is dropped (keys of the conversion report).
DARK = 'dark_frame'
NO_CENTRE = 'no_x_centre'
TOO_NARROW = 'too_narrow'
CORRUPT = 'corrupt_image'


def pretreat_frame(img: np.ndarray,
                   size: int = IMG_SIZE) -> tuple[np.ndarray | None, str]:
  """Crops, resizes and centres one grayscale silhouette.

  Args:
    img: uint8 [H, W] grayscale frame.
    size: output height and width.

  Returns:
    (uint8 [size, size] frame, '') or (None, reason) when it is dropped.
  """
  if img.sum(dtype=np.int64) <= DARK_THRESHOLD:
    return None, DARK
  rows = np.flatnonzero(img.any(axis=1))
  img = img[rows[0]:rows[-1] + 1]  # [h, W]
  h, w = img.shape
  new_w = int(size * (w / h))
  if new_w < 1:
    return None, TOO_NARROW
  img = cv2.resize(img, (new_w, size), interpolation=cv2.INTER_CUBIC)
  cols = np.cumsum(img.sum(axis=0, dtype=np.int64))  # [new_w]
  centre = int(np.argmax(cols > cols[-1] / 2))
  if centre == 0:  # also covers "no column passes half" (all-zero crop)
    return None, NO_CENTRE
  half = size // 2
  left, right = centre - half, centre + half
  if left <= 0 or right >= img.shape[1]:
    padded = np.zeros((size, new_w + 2 * half), np.uint8)  # [size, w + size]
    padded[:, half:half + new_w] = img
    img, left, right = padded, left + half, right + half
  return np.ascontiguousarray(img[:, left:right], dtype=np.uint8), ''


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

  Unreadable files are dropped with reason 'corrupt_image'.

  Args:
    paths: image files (PNG), already sorted.
    size: output frame size.

  Returns:
    The kept frames and the per-frame skip reasons.
  """
  frames, skipped = [], []
  for path in paths:
    img = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
      frame, reason = None, CORRUPT
    else:
      frame, reason = pretreat_frame(img, size)
    if frame is None:
      skipped.append((os.path.basename(path), reason))
    else:
      frames.append(frame)
  out = (np.stack(frames) if frames
         else np.zeros((0, size, size), np.uint8))  # [T, size, size]
  return Pretreated(out, skipped)
