"""Tests for data_prep.pretreatment against hand cases and a loop reference."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from data_prep import png_gray
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


def test_other_image_formats_named_png_are_skipped(tmp_path):
  paths = []
  for i, ext in enumerate(['.png', '.jpg', '.bmp', '.png']):
    p = tmp_path / f'{i:03d}{ext}'
    cv2.imwrite(str(p), walker(100 + 20 * i, 0.3 * i))
    paths.append(str(p.rename(tmp_path / f'{i:03d}.png')))
  (tmp_path / '004.png').write_bytes(b'')
  paths.append(str(tmp_path / '004.png'))
  res = pretreatment.pretreat_files(paths)
  assert res.frames.shape == (2, 64, 64)
  np.testing.assert_array_equal(res.frames[1],
                                reference_pretreat(walker(160, 0.9)))
  assert res.skipped == [('001.png', 'not_png_data: jpeg'),
                         ('002.png', 'not_png_data: bmp'),
                         ('004.png', pretreatment.CORRUPT)]


# --- png_gray: the fast PNG path must give OpenCV's pixels, or decline ---

def _chunk(kind, body):
  return (struct.pack('>I', len(body)) + kind + body
          + struct.pack('>I', zlib.crc32(kind + body)))


def _paeth(a, b, c):
  p = a + b - c
  pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
  if pa <= pb and pa <= pc:
    return a
  return b if pb <= pc else c


def encode_png(img, filters, *, before_idat=(), after_idat=(), ihdr=None,
               idat_parts=1, stream_extra=b'', file_extra=b''):
  """An 8-bit grayscale PNG of `img` with the given row filter types,
  written by hand (independent of OpenCV and of png_gray)."""
  h, w = img.shape
  px = img.astype(np.int64)
  rows = []
  for y in range(h):
    above = px[y - 1] if y else np.zeros(w, np.int64)
    left = np.concatenate([[0], px[y, :-1]])
    upleft = np.concatenate([[0], above[:-1]])
    kind = filters[y]
    if kind == 0:
      pred = np.zeros(w, np.int64)
    elif kind == 1:
      pred = left
    elif kind == 2:
      pred = above
    elif kind == 3:
      pred = (left + above) // 2
    else:
      pred = np.array([_paeth(a, b, c)
                       for a, b, c in zip(left, above, upleft)])
    rows.append(bytes([kind]) + ((px[y] - pred) % 256).astype(
        np.uint8).tobytes())
  stream = zlib.compress(b''.join(rows)) + stream_extra
  header = ihdr or struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)
  cut = np.linspace(0, len(stream), idat_parts + 1).astype(int)
  idats = [_chunk(b'IDAT', stream[a:b]) for a, b in zip(cut[:-1], cut[1:])]
  return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header)
          + b''.join(before_idat) + b''.join(idats) + b''.join(after_idat)
          + _chunk(b'IEND', b'') + file_extra)


def opencv_decode(data):
  return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def foreground_rows(img):
  rows = np.flatnonzero(img.any(axis=1))
  return img[rows[0]:rows[-1] + 1] if rows.size else img[:0]


@pytest.fixture(params=['zlib', 'libdeflate'])
def inflate(request, monkeypatch):
  """Runs a test with each inflate library png_gray can use."""
  if request.param == 'libdeflate':
    pytest.importorskip('deflate')
  monkeypatch.setattr(png_gray, 'INFLATE', request.param)
  return request.param


def _bad_filter_png(img):
  """A PNG whose first row has the invalid filter type 5."""
  h, w = img.shape
  rows = b''.join(bytes([5 if y == 0 else 0]) + img[y].tobytes()
                  for y in range(h))
  return (b'\x89PNG\r\n\x1a\n'
          + _chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
          + _chunk(b'IDAT', zlib.compress(rows)) + _chunk(b'IEND', b''))


def random_images(rng):
  """Silhouettes, gray levels (exercise the mod-256 sums), border cases."""
  imgs = [walker(160, 0.4), walker(306, 1.2), walker(14, 2.0),
          np.zeros((240, 320), np.uint8)]
  edge = np.zeros((24, 17), np.uint8)
  edge[3:9, 15:] = 200  # foreground up to the last column
  imgs.append(edge)
  edge = np.zeros((24, 17), np.uint8)
  edge[0, 0] = 7  # first row, first column only
  edge[-1, :] = 250  # and the whole last row
  imgs.append(edge)
  imgs.append(np.full((5, 1), 255, np.uint8))  # one column
  imgs.append(np.full((1, 9), 3, np.uint8))  # one row
  for _ in range(6):
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    img = rng.integers(0, 256, (h, w)).astype(np.uint8)
    img[rng.random((h, w)) < 0.5] = 0
    imgs.append(img)
  return imgs


@pytest.mark.parametrize('kinds', [(0,), (1,), (2,), (3,), (4,), (0, 1),
                                   (1, 2), (0, 1, 2), (2, 4), (1, 3),
                                   (0, 1, 2, 3, 4)])
def test_png_gray_decodes_every_row_filter(inflate, kinds):
  rng = np.random.default_rng(len(kinds) * 10 + kinds[-1])
  for img in random_images(rng):
    filters = rng.choice(kinds, img.shape[0])
    data = encode_png(img, filters, idat_parts=int(rng.integers(1, 4)))
    np.testing.assert_array_equal(opencv_decode(data), img)
    np.testing.assert_array_equal(png_gray.decode(data), img)
    np.testing.assert_array_equal(png_gray.decode_foreground_rows(data),
                                  foreground_rows(img))


@pytest.mark.parametrize('flag', ['IMWRITE_PNG_FILTER_NONE',
                                  'IMWRITE_PNG_FILTER_SUB',
                                  'IMWRITE_PNG_FILTER_UP',
                                  'IMWRITE_PNG_FILTER_AVG',
                                  'IMWRITE_PNG_FILTER_PAETH',
                                  'IMWRITE_PNG_FAST_FILTERS',
                                  'IMWRITE_PNG_ALL_FILTERS'])
def test_png_gray_reads_opencv_written_files(inflate, flag):
  for img in random_images(np.random.default_rng(3)):
    ok, buf = cv2.imencode('.png', img,
                           [cv2.IMWRITE_PNG_FILTER, getattr(cv2, flag)])
    assert ok
    np.testing.assert_array_equal(png_gray.decode(buf.tobytes()), img)


def test_png_gray_declines_what_it_does_not_decode(inflate, tmp_path):
  """Other forms give None; the frame reader then returns OpenCV's pixels
  (or None where OpenCV cannot read the file either)."""
  img = walker(120, 0.7)
  h, w = img.shape
  rgb = np.dstack([img, img // 2, img])
  cases = {
      'bad_filter': _bad_filter_png(img),
      'gamma': encode_png(img, [1] * h,
                          before_idat=[_chunk(b'gAMA', b'\0\0\xb1\x8f')]),
      'after_iend': encode_png(img, [1] * h, file_extra=b'xx'),
      'extra_stream': encode_png(img, [1] * h, stream_extra=b'zz'),
      'bad_crc': encode_png(img, [1] * h)[:-5] + b'\0\0\0\0\0',
      'truncated': encode_png(img, [1] * h)[:500],
      'not_png': b'\x89PNG\r\n\x1a\n not really a png',
      'empty': b'',
      'rgb': cv2.imencode('.png', rgb)[1].tobytes(),
      '16bit': cv2.imencode('.png', img.astype(np.uint16) * 257)[1].tobytes(),
      'interlaced_header': encode_png(
          img, [1] * h, ihdr=struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 1)),
  }
  stream = encode_png(img, [1] * h, idat_parts=2)
  cut = stream.index(b'IDAT', stream.index(b'IDAT') + 4) - 4
  cases['idat_not_consecutive'] = (stream[:cut] + _chunk(b'tEXt', b'a\0b')
                                   + stream[cut:])
  for name, data in cases.items():
    if name == 'extra_stream' and inflate == 'libdeflate':
      # libdeflate ignores bytes after the stream, as libpng does (warning).
      np.testing.assert_array_equal(png_gray.decode(data), img)
    else:
      assert png_gray.decode(data) is None, name
    path = tmp_path / f'{name}.png'
    path.write_bytes(data)
    want = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    got = pretreatment.read_foreground_rows(str(path))
    if want is None:
      assert got is None, name
    else:
      np.testing.assert_array_equal(got, foreground_rows(want), err_msg=name)
  mixed = encode_png(img, [1] * 100 + [4] + [2] * (h - 101))
  assert png_gray.row_filters(mixed) == {1, 2, 4}
  assert png_gray.row_filters(cases['rgb']) is None
  # Harmless chunks are read through.
  text = encode_png(img, [2] * h, before_idat=[_chunk(b'pHYs', bytes(9))],
                    after_idat=[_chunk(b'tEXt', b'Software\0test')])
  np.testing.assert_array_equal(png_gray.decode(text), img)


def test_pretreat_files_mixed_encodings_match_reference(inflate, tmp_path):
  """A sequence whose frames use every encoding: the kept frames are those
  of the reference rule on `cv2.imread`."""
  imgs = [walker(20 + 25 * i, 0.5 * i) for i in range(12)]
  imgs[1] = np.dstack([imgs[1]] * 3)  # colour: read by OpenCV
  params = [[], [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH],
            [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP],
            [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_ALL_FILTERS],
            [cv2.IMWRITE_PNG_COMPRESSION, 9]]
  for order in (range(12), [1] + list(range(12))):  # start with a slow one
    paths = []
    for n, i in enumerate(order):
      path = tmp_path / f'{len(order)}_{n:03d}.png'
      cv2.imwrite(str(path), imgs[i], params[i % len(params)])
      paths.append(str(path))
    want = [reference_pretreat(cv2.imread(p, cv2.IMREAD_GRAYSCALE))
            for p in paths]
    got = pretreatment.pretreat_files(paths)
    np.testing.assert_array_equal(
        got.frames, np.stack([x for x in want if x is not None]))
