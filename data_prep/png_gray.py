"""Exact fast decoding of plain 8-bit grayscale PNG silhouettes.

Decoding dominates the cost of pretreating a silhouette sequence. For a
320x240 silhouette, `cv2.imread` spends more than half of its time (about
0.33 ms) inflating the zlib stream and most of the rest unfiltering the rows
byte by byte. This module decodes silhouette PNGs with one inflate call and
a few operations on a narrow band of columns. It takes files that are

  * 8-bit grayscale and non-interlaced (any row filters);
  * made of the chunks IHDR, IDAT (consecutive), IEND and the ancillary
    chunks that cannot change decoded pixel values (tEXt, zTXt, iTXt, tIME,
    pHYs) only;
  * intact: every chunk CRC and the zlib checksum correct, the image data
    exactly as long as the header says, nothing after IEND.

Anything else (colour, 16-bit, palette, interlacing, gamma/colour/
transparency/EXIF chunks, damaged files) is not decoded: the functions
return None and the caller falls back to OpenCV, so the pixels are always
those of `cv2.imread(path, cv2.IMREAD_GRAYSCALE)`.

Unfiltering works on the band of columns that hold a nonzero filtered byte,
plus one column. Outside it every filtered byte is 0, so left of the band
every pixel is 0 and right of it every row repeats its last band value (a
None row is 0 there, a Sub or Paeth row repeats its left neighbour, an Up
row the pixel above, which repeats in turn; an Average row does not, so with
Average rows the band reaches the right edge). A silhouette's band is a
fraction of the image width. None, Sub and Up rows are unfiltered here
(running sums mod 256 from `cv2.integral`, exact up to 8.4 Mpixel images);
with Average or Paeth rows, libpng unfilters a PNG of the band alone.

The image data is inflated by libdeflate when the optional `deflate`
package is installed (about 3x faster than zlib), else by zlib.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

try:  # libdeflate inflates about 3x faster than zlib; optional.
  import deflate as _deflate  # pytype: disable=import-error
except ImportError:  # pragma: no cover - depends on the environment
  _deflate = None

# Which library inflates the image data: 'libdeflate' (the `deflate`
# package, when installed) or 'zlib'.
INFLATE = 'zlib' if _deflate is None else 'libdeflate'


def deflate_module():
  """The optional `deflate` module (libdeflate bindings), or None."""
  return _deflate


SIGNATURE = b'\x89PNG\r\n\x1a\n'
# Ancillary chunks that never change the pixel values of a grayscale decode.
_HARMLESS = frozenset((b'tEXt', b'zTXt', b'iTXt', b'tIME', b'pHYs'))
# cv2.integral's int32 sums stay exact up to this many pixels (x 255).
_MAX_PIXELS = (2**31 - 1) // 255

NONE, SUB, UP, AVERAGE, PAETH = 0, 1, 2, 3, 4  # PNG row filter types


def _inflate(data: bytes) -> tuple[int, int, bytes] | None:
  """(height, width, filtered rows: H x (1 + W) bytes) of a plain 8-bit
  grayscale PNG, or None when the file is anything else."""
  if data[:8] != SIGNATURE:
    return None
  n = len(data)
  pos = 8
  size = None
  idat = []
  idat_done = False
  while True:
    if pos + 12 > n:
      return None
    length = int.from_bytes(data[pos:pos + 4], 'big')
    end = pos + 12 + length
    if end > n:
      return None
    kind = data[pos + 4:pos + 8]
    if zlib.crc32(data[pos + 4:pos + 8 + length]) != int.from_bytes(
        data[end - 4:end], 'big'):
      return None
    if size is None:
      if kind != b'IHDR' or length != 13:
        return None
      w = int.from_bytes(data[pos + 8:pos + 12], 'big')
      h = int.from_bytes(data[pos + 12:pos + 16], 'big')
      # bit depth 8, colour type 0 (gray), compression 0, filter 0, no
      # interlacing.
      if data[pos + 16:pos + 21] != b'\x08\x00\x00\x00\x00':
        return None
      if not 0 < w * h <= _MAX_PIXELS:
        return None
      size = (h, w)
    elif kind == b'IDAT':
      if idat_done:
        return None  # IDAT chunks must be consecutive
      idat.append(data[pos + 8:end - 4])
    elif kind == b'IEND':
      if end != n or not idat:
        return None
      break
    else:
      if idat:
        idat_done = True
      if kind not in _HARMLESS:
        return None
    pos = end
  h, w = size
  raw = _inflate_exact(b''.join(idat), h * (w + 1))
  if raw is None:
    return None
  return h, w, raw


def _inflate_exact(data: bytes, size: int) -> bytes | None:
  """The `size` bytes of a valid zlib stream (checksum included), or None.

  With zlib, a stream followed by extra bytes is refused too (libpng reads
  such files with a warning: OpenCV then decodes them); libdeflate ignores
  the extra bytes, which gives the same pixels.
  """
  if INFLATE == 'libdeflate':
    try:
      raw = _deflate.zlib_decompress(data, size)
    except _deflate.DeflateError:
      return None
    return raw if len(raw) == size else None
  inflater = zlib.decompressobj()
  try:
    raw = inflater.decompress(data, size + 1)
  except zlib.error:
    return None
  if (len(raw) != size or not inflater.eof or inflater.unused_data
      or inflater.unconsumed_tail):
    return None
  return raw


def row_filters(data: bytes) -> set[int] | None:
  """The row filter types (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) of a
  plain 8-bit grayscale PNG, or None for a file `decode` does not take. To
  see how a raw tree was written: `png_gray.row_filters(open(path,
  'rb').read())`; rows of types 3 and 4 take the slower libpng band path."""
  parsed = _inflate(data)
  return None if parsed is None else set(parsed[2][::parsed[1] + 1])


def _unfilter_band(h: int, w: int, raw: bytes
                   ) -> tuple[int, int, np.ndarray, np.ndarray | None] | None:
  """Unfilters the band of columns that matters (see the module doc).

  Returns:
    (c0, c1, band, fg): the pixels uint8 [H, c1 - c0] of columns [c0, c1),
    left of which pixels are 0 and right of which each row repeats its
    value in column c1 - 1 (c0 == c1: all pixels are 0); fg is the bool [H]
    "row has a nonzero pixel" where it comes for free, else None.
    None when a filter type is invalid.
  """
  rows = np.frombuffer(raw, np.uint8).reshape(h, w + 1)
  kinds = raw[::w + 1]  # the filter type of each row
  filt = rows[:, 1:]  # [H, W]
  cols = np.flatnonzero(filt.max(axis=0))
  if cols.size == 0:
    return 0, 0, np.zeros((h, 0), np.uint8), np.zeros(h, bool)
  c0, c1 = int(cols[0]), min(int(cols[-1]) + 2, w)
  band = filt[:, c0:c1]  # [H, b]
  if kinds.count(NONE) == h:
    return c0, c1, band, None
  if kinds.count(SUB) == h:
    # Sub: each row is the running sum (mod 256) of its filtered bytes, and
    # it has a nonzero pixel where it has a nonzero filtered byte.
    s = cv2.integral(band)  # int32 [H + 1, b + 1], s[y, x] = sum above-left
    return (c0, c1, (s[1:, 1:] - s[:-1, 1:]).astype(np.uint8),  # wraps
            s[1:, -1] != s[:-1, -1])
  top = max(kinds)
  if top > PAETH:
    return None
  if top > UP:
    return _unfilter_band_opencv(h, w, rows, c0, c1, AVERAGE in kinds)
  kinds = rows[:, 0]  # [H]
  subs = np.flatnonzero(kinds == SUB)
  if subs.size:
    s = cv2.integral(band[subs])  # only the Sub rows
    band = band.copy()
    band[subs] = (s[1:, 1:] - s[:-1, 1:]).astype(np.uint8)
  up = kinds == UP
  up[0] = False  # the row above the first one is zero: Up = None there
  if up.any():
    # Up: a run of Up rows adds its filtered bytes down from the last row
    # with another filter (its "base" row, already final): a column-wise
    # running sum that restarts at every base row.
    s = cv2.integral(np.ascontiguousarray(band))  # int32 [H + 1, b + 1]
    base = np.maximum.accumulate(np.where(up, 0, np.arange(h)))  # [H]
    t = s[1:] - s[base]  # sums over rows base..y and columns < x
    band = (t[:, 1:] - t[:, :-1]).astype(np.uint8)
  return c0, c1, band, None


def _unfilter_band_opencv(h: int, w: int, rows: np.ndarray, c0: int, c1: int,
                          average: bool
                          ) -> tuple[int, int, np.ndarray, None] | None:
  """`_unfilter_band` for any filters: libpng unfilters a PNG made of the
  band's filtered bytes alone (zlib level 0), through OpenCV.

  Cutting the left columns changes nothing (they are 0 and the filters read
  0 left of the image too). On the right, a Paeth row also repeats its last
  band value, but an Average row does not: then the band goes to the right
  edge.
  """
  if average:
    c1 = w
  narrow = np.empty((h, c1 - c0 + 1), np.uint8)  # [H, 1 + b]
  narrow[:, 0] = rows[:, 0]
  narrow[:, 1:] = rows[:, 1 + c0:1 + c1]
  png = b''.join((
      SIGNATURE,
      _chunk(b'IHDR', (c1 - c0).to_bytes(4, 'big') + h.to_bytes(4, 'big')
             + b'\x08\x00\x00\x00\x00'),
      _chunk(b'IDAT', zlib.compress(narrow.tobytes(), 0)),
      _chunk(b'IEND', b'')))
  band = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
  if band is None or band.shape != (h, c1 - c0):
    return None
  return c0, c1, band, None


def _chunk(kind: bytes, body: bytes) -> bytes:
  return (len(body).to_bytes(4, 'big') + kind + body
          + zlib.crc32(body, zlib.crc32(kind)).to_bytes(4, 'big'))


def _place(band: np.ndarray, c0: int, c1: int, w: int) -> np.ndarray:
  """Full-width rows from a band (see `_unfilter_band`)."""
  out = np.zeros((band.shape[0], w), np.uint8)
  if c1 > c0:
    out[:, c0:c1] = band
    last = band[:, -1]
    if c1 < w and last.any():
      out[:, c1:] = last[:, None]
  return out


def decode(data: bytes) -> np.ndarray | None:
  """The uint8 [H, W] image of a plain grayscale PNG (see module doc), or
  None: then decode it with OpenCV."""
  parsed = _inflate(data)
  banded = parsed and _unfilter_band(*parsed)
  if not banded:
    return None
  c0, c1, band, _ = banded
  return _place(band, c0, c1, parsed[1])


def decode_foreground_rows(data: bytes) -> np.ndarray | None:
  """Rows first..last with a nonzero pixel, full width: uint8 [h, W] with
  h = 0 for an all-zero image; None when the file is not a plain grayscale
  PNG (see module doc): then decode it with OpenCV."""
  parsed = _inflate(data)
  banded = parsed and _unfilter_band(*parsed)
  if not banded:
    return None
  c0, c1, band, fg = banded
  w = parsed[1]
  if fg is None:
    fg = band.max(axis=1) if c1 > c0 else np.zeros(len(band), bool)
  fg = np.flatnonzero(fg)
  if fg.size == 0:
    return np.zeros((0, w), np.uint8)
  return _place(band[fg[0]:fg[-1] + 1], c0, c1, w)
