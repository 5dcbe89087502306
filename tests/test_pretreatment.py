"""Tests for data_prep.pretreatment against hand cases and a loop reference."""

import cv2
import numpy as np
import pytest

from data_prep import pretreatment


def reference_pretreat(img, size=64):
  """Independent loop implementation of the pretreatment rule."""
  if int(img.astype(np.int64).sum()) <= 10000:
    return None
  fg_rows = [r for r in range(img.shape[0]) if img[r].max() > 0]
  img = img[min(fg_rows):max(fg_rows) + 1, :]
  width = int(size * img.shape[1] / img.shape[0])
  img = cv2.resize(img, (width, size), interpolation=cv2.INTER_CUBIC)
  total = int(img.astype(np.int64).sum())
  running, centre = 0, None
  for col in range(img.shape[1]):
    running += int(img[:, col].astype(np.int64).sum())
    if running > total / 2:
      centre = col
      break
  if not centre:
    return None
  left, right = centre - size // 2, centre + size // 2
  if left <= 0 or right >= img.shape[1]:
    zeros = np.zeros((size, size // 2), img.dtype)
    img = np.concatenate([zeros, img, zeros], axis=1)
    left += size // 2
    right += size // 2
  return img[:, left:right]


def walker(x, phase, h=240, w=320, y0=40):
  """A 320x240 stick-figure silhouette centred at column x."""
  img = np.zeros((h, w), np.uint8)
  cv2.circle(img, (x, y0 + 10), 12, 255, -1)
  cv2.rectangle(img, (x - 15, y0 + 22), (x + 15, y0 + 90), 255, -1)
  dx = int(22 * np.sin(phase))
  cv2.line(img, (x, y0 + 90), (x + dx, y0 + 160), 255, 9)
  cv2.line(img, (x, y0 + 90), (x - dx, y0 + 160), 255, 9)
  cv2.line(img, (x, y0 + 30), (x - dx, y0 + 80), 255, 6)
  return img


def test_box_hand_case():
  img = np.zeros((240, 320), np.uint8)
  img[40:200, 100:180] = 255  # 160 x 80 box
  out, reason = pretreatment.pretreat_frame(img)
  assert reason == '' and out.shape == (64, 64) and out.dtype == np.uint8
  # Crop 160 x 320 -> 64 x 128: the box spans resized columns 40..71, the
  # centre is column 56, so the window [24, 88) puts the box at 16..47.
  np.testing.assert_array_equal(np.flatnonzero(out.max(0) > 127),
                                np.arange(16, 48))
  assert out[:, 16:48].min() == 255 and out[:, :14].max() == 0


def test_dark_threshold():
  img = np.zeros((240, 320), np.uint8)
  img[100:140, 150] = 250  # pixel sum exactly 10000
  assert pretreatment.pretreat_frame(img) == (None, pretreatment.DARK)
  img[100, 151] = 1  # 10001: kept
  out, reason = pretreatment.pretreat_frame(img)
  assert reason == '' and out.shape == (64, 64)


def test_centre_at_column_zero_is_dropped():
  img = np.zeros((240, 320), np.uint8)
  img[20:220, 0] = 255  # all foreground in the first column
  assert reference_pretreat(img) is None
  assert pretreatment.pretreat_frame(img) == (None, pretreatment.NO_CENTRE)


def test_too_narrow_is_dropped():
  img = np.zeros((240, 3), np.uint8)  # width int(64 * 3 / 240) = 0
  img[:, 1] = 255
  assert pretreatment.pretreat_frame(img) == (None, pretreatment.TOO_NARROW)


@pytest.mark.parametrize('x', [14, 40, 160, 290, 306])
def test_matches_reference_including_padding(x):
  for phase in (0.0, 0.9, 2.0):
    img = walker(x, phase)
    want = reference_pretreat(img)
    got, reason = pretreatment.pretreat_frame(img)
    if want is None:
      assert got is None and reason
    else:
      assert reason == ''
      np.testing.assert_array_equal(got, want)


def test_random_blobs_match_reference():
  rng = np.random.default_rng(0)
  for _ in range(40):
    img = np.zeros((240, 320), np.uint8)
    for _ in range(rng.integers(1, 4)):
      centre = (int(rng.integers(0, 320)), int(rng.integers(0, 240)))
      axes = (int(rng.integers(2, 60)), int(rng.integers(2, 100)))
      cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                  int(rng.integers(100, 256)), -1)
    want = reference_pretreat(img)
    got, _ = pretreatment.pretreat_frame(img)
    if want is None:
      assert got is None
    else:
      np.testing.assert_array_equal(got, want)


def test_pretreat_files_reports_skips(tmp_path):
  paths = []
  for i, img in enumerate([walker(100, 0.3), np.zeros((240, 320), np.uint8),
                           walker(200, 1.1)]):
    p = tmp_path / f'{i:03d}.png'
    cv2.imwrite(str(p), img)
    paths.append(str(p))
  bad = tmp_path / '003.png'
  bad.write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
  paths.append(str(bad))
  res = pretreatment.pretreat_files(paths)
  assert res.frames.shape == (2, 64, 64) and res.frames.dtype == np.uint8
  np.testing.assert_array_equal(res.frames[1],
                                reference_pretreat(walker(200, 1.1)))
  assert res.skipped == [('001.png', pretreatment.DARK),
                         ('003.png', pretreatment.CORRUPT)]
  empty = pretreatment.pretreat_files([])
  assert empty.frames.shape == (0, 64, 64) and empty.skipped == []
