"""The per-sequence pretreatment cache of `data_prep.convert`.

A worker process pretreats one sequence and stores, atomically (temporary
file + rename), the frames exactly as the TFDS shards store them: a zlib
stream of `frames.tobytes()`, as `tfds.features.Tensor(encoding='zlib')`
writes it. The shard writer then only appends these bytes to the records,
so the frames are compressed once, in parallel, and never decompressed
during a conversion. The stream is made by libdeflate at level 6 where the
optional `deflate` package is installed (3x faster than zlib, about the
same size), else by `zlib.compress` (the very bytes TFDS would write).

File format (`.seq`): the 8-byte magic `GAITSEQ1`, a 4-byte little-endian
header length, a UTF-8 JSON header {"shape": [T, size, size], "skipped":
[[file name, reason], ...], "nbytes": N, "crc32": C}, then the N bytes of
compressed frames (none when T = 0). A file that does not parse, or whose
frames do not match their length and CRC, is pretreated again.

This module is the entry point of the worker processes: it imports only
NumPy, OpenCV and the light `data_prep` modules, so that workers start fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zlib

import numpy as np

from data_prep import pretreat_wild
from data_prep import pretreatment
from data_prep import png_gray
from data_prep import raw_sources

MAGIC = b'GAITSEQ1'
SUFFIX = '.seq'
BAD_PKL = 'bad_pkl'
# Which library compresses the frames: 'libdeflate' or 'zlib' (as png_gray).
COMPRESS = png_gray.INFLATE


def compress(raw: bytes) -> bytes:
  """A zlib stream of `raw` (level 6, see the module doc)."""
  if COMPRESS == 'libdeflate':
    return bytes(png_gray.deflate_module().zlib_compress(raw, 6))
  return zlib.compress(raw)


@dataclasses.dataclass(frozen=True)
class Task:
  """One sequence to pretreat into `cache_path`."""
  ref: raw_sources.SequenceRef
  cache_path: str
  # 'png' (the generic rule), 'pkl' (an OpenGait pickle) or a rule of
  # `pretreat_wild.RULES` ('grew', 'ccpg', 'sustech1k', 'casia_e').
  kind: str
  size: int


@dataclasses.dataclass(frozen=True)
class Cached:
  """A cached sequence.

  Attributes:
    shape: (T, size, size) of the kept frames (T may be 0).
    skipped: (file name, reason) of every dropped frame.
    frames_zlib: `zlib.compress` of the uint8 frames (b'' when T = 0).
  """
  shape: tuple[int, int, int]
  skipped: list[tuple[str, str]]
  frames_zlib: bytes

  def frames(self) -> np.ndarray:
    """The uint8 [T, size, size] frames."""
    if not self.shape[0]:
      return np.zeros(self.shape, np.uint8)
    raw = zlib.decompress(self.frames_zlib)
    return np.frombuffer(raw, np.uint8).reshape(self.shape)


def _load_pkl(path: str, size: int) -> pretreatment.Pretreated:
  """Reads an OpenGait pickle of uint8 [T, size, size] frames.

  Unpickling can run code: convert only pkl trees from a trusted source.
  """
  name = os.path.basename(path)
  try:
    with open(path, 'rb') as f:
      arr = np.asarray(pickle.load(f))
  except Exception as e:  # pylint: disable=broad-except
    return pretreatment.Pretreated(np.zeros((0, size, size), np.uint8),
                                   [(name, f'{BAD_PKL}: {type(e).__name__}')])
  if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (size, size):
    why = f'{BAD_PKL}: {arr.dtype} {list(arr.shape)}'
    return pretreatment.Pretreated(np.zeros((0, size, size), np.uint8),
                                   [(name, why)])
  return pretreatment.Pretreated(np.ascontiguousarray(arr), [])


def write(path: str, frames: np.ndarray,
          skipped: list[tuple[str, str]]) -> None:
  """Stores a pretreated sequence at `path` (atomically)."""
  data = compress(frames.tobytes()) if frames.shape[0] else b''
  header = json.dumps({'shape': [int(d) for d in frames.shape],
                       'skipped': [list(s) for s in skipped],
                       'nbytes': len(data),
                       'crc32': zlib.crc32(data)}).encode()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(MAGIC + len(header).to_bytes(4, 'little') + header + data)
  os.replace(tmp, path)


def read(path: str) -> Cached:
  """Reads a cache file; raises ValueError (or OSError) if it is damaged."""
  with open(path, 'rb') as f:
    blob = f.read()
  if blob[:8] != MAGIC:
    raise ValueError(f'{path}: not a sequence cache file')
  end = 12 + int.from_bytes(blob[8:12], 'little')
  header = json.loads(blob[12:end])  # ValueError when cut short
  data = blob[end:]
  if len(data) != header['nbytes'] or zlib.crc32(data) != header['crc32']:
    raise ValueError(f'{path}: damaged frames')
  shape = tuple(int(d) for d in header['shape'])
  if len(shape) != 3:
    raise ValueError(f'{path}: bad shape {shape}')
  return Cached(shape, [(str(n), str(r)) for n, r in header['skipped']],
                data)


def process_task(task: Task) -> tuple[str, int]:
  """Pretreats one sequence and stores it in the cache (atomically).

  Args:
    task: the sequence and where to store it.

  Returns:
    (sequence key, number of kept frames).
  """
  if task.kind == 'pkl':
    res = (_load_pkl(task.ref.files[0], task.size) if task.ref.files else
           pretreatment.Pretreated(np.zeros((0, task.size, task.size),
                                            np.uint8), []))
  elif task.kind == 'png':
    res = pretreatment.pretreat_files(task.ref.files, task.size)
  else:
    res = pretreat_wild.RULES[task.kind](task.ref.files, task.size)
  write(task.cache_path, res.frames, res.skipped)
  return task.ref.key, int(res.frames.shape[0])


def init_worker() -> None:
  """Pool initializer: one OpenCV thread per process."""
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)  # parallelism comes from the processes
