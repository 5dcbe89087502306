"""Window geometry of the Video-Swin blocks (`gait_jax.models.swin3d`).

Partitioning `[n, D, H, W, c]` features into `(frames, h, w)` windows and
back, OpenGait's window shrinking (`get_window_size`), the relative position
index, the shifted-window region mask (`compute_mask`), and the key mask that
makes a padded batch attend as its sequences do alone.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Dims = tuple[int, int, int]


def window_and_shift(size: Dims, window: Sequence[int],
                     shift: Sequence[int]) -> tuple[Dims, Dims]:
  """OpenGait's `get_window_size`: a window axis not smaller than the input
  shrinks to it, and then has no shift."""
  win, sh = list(window), list(shift)
  for i, n in enumerate(size):
    if n <= window[i]:
      win[i], sh[i] = n, 0
  return tuple(win), tuple(sh)


def relative_position_index(window: Sequence[int]) -> np.ndarray:
  """`[N, N]` index into the bias table of every token pair of a window
  (tokens in (d, h, w) order; table rows enumerate offsets d-major)."""
  coords = np.stack(np.meshgrid(*[np.arange(w) for w in window],
                                indexing='ij')).reshape(3, -1)  # [3, N]
  rel = coords[:, :, None] - coords[:, None, :]  # [3, N, N]
  rel = rel + np.asarray(window)[:, None, None] - 1  # offsets from 0
  spans = 2 * np.asarray(window) - 1
  return rel[0] * spans[1] * spans[2] + rel[1] * spans[2] + rel[2]


def partition(x: Array, window: Dims) -> Array:
  """`[n, D, H, W, c]` -> `[n, nW, N, c]` (windows in (d, h, w) order)."""
  n, d, h, w, c = x.shape
  a, b, e = window
  x = x.reshape(n, d // a, a, h // b, b, w // e, e, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # [n, D/a, H/b, W/e, a, b, e, c]
  return x.reshape(n, -1, a * b * e, c)


def merge(x: Array, window: Dims, size: Dims) -> Array:
  """Inverse of `partition`: `[n, nW, N, c]` -> `[n, D, H, W, c]`."""
  (a, b, e), (d, h, w) = window, size
  n, c = x.shape[0], x.shape[-1]
  x = x.reshape(n, d // a, h // b, w // e, a, b, e, c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(n, d, h, w, c)


def _region_labels(size: int, window: int, shift: int) -> np.ndarray:
  """Per position of a shifted axis: which of OpenGait's three slices
  (`[:-window]`, `[-window:-shift]`, `[-shift:]`) it lies in."""
  labels = np.zeros(size, np.int64)
  if shift == 0:  # OpenGait's last slice `[-0:]` covers the whole axis.
    return labels
  labels[size - window:] = 1
  labels[size - shift:] = 2
  return labels


@functools.lru_cache(maxsize=None)
def region_mask(padded: Dims, window: Dims, shift: Dims) -> np.ndarray:
  """OpenGait's `compute_mask`: bool `[nW, N, N]`, True where two tokens of
  a shifted window come from the same region (may attend)."""
  grids = np.meshgrid(*[_region_labels(p, w, s) for p, w, s in
                        zip(padded, window, shift)], indexing='ij')
  ids = (grids[0] * 9 + grids[1] * 3 + grids[2])[None, ..., None]
  win = np.asarray(partition(ids, window))[0, :, :, 0]  # [nW, N]
  return win[:, :, None] == win[:, None, :]


def temporal_key_mask(lengths: Array, padded: Dims, window: Dims,
                      roll: Array) -> Array:
  """bool `[n, nW, 1, N]`: keys within each sequence's own padded length.

  Args:
    lengths: int `[n]`, real frames per sequence.
    padded: the padded (D, H, W) of the batch.
    window: the batch's window (after `window_and_shift`).
    roll: int `[n]`, each sequence's temporal roll (0 or `shift[0]`).

  Returns:
    The mask, in the layout of `partition`.
  """
  wd = window[0]
  # Alone, a sequence of L <= wd frames has a window of L frames; longer
  # ones pad to a multiple of wd.
  own = jnp.where(lengths <= wd, lengths, -(-lengths // wd) * wd)  # [n]
  pos = jnp.arange(padded[0])
  frame = (pos[None, :] + roll[:, None]) % padded[0]  # [n, D] source frame
  valid = frame < own[:, None]  # [n, D]
  valid = jnp.broadcast_to(valid[:, :, None, None, None],
                           (lengths.shape[0],) + padded + (1,))
  return partition(valid, window)[..., 0][:, :, None, :]
