"""RG-Gait's occlusion shapes (training) and its half patch (evaluation).

RG-Gait (arXiv 2507.10978) trains with an ``Occlusion(shape_cfgs)`` wrapper
as the last op of its Compose: one coin ``u ~ U(0, 1)`` per sequence picks
the first shape whose cumulative probability exceeds ``u``; the remainder is
no occlusion. Its configs use ``ConsistentHalfPatchTwoTypesResized(prob,
portion_range=[0.1, 0.6])`` alone; its transform module also holds a middle
patch, a moving patch and a moving pole, all four built here (`Occlusion`).
The same draws hold for every frame of a sequence.

* **Half patch** (`half_patch`): a portion ``p ~ U(lo, hi)`` and a side: the
  *top* band, rows ``[0, ⌊(1−p)H⌋)``, or the *bottom* band, rows
  ``[⌊pH⌋, H)``, stays visible; every frame's kept band is resized back to
  ``H×W`` (``cv2.resize``, bilinear, on float64 frames as RG's float
  frames) and binarised to ``m · [x > 0.5 m]`` with ``m`` the maximum of the
  resized sequence (rounded to uint8; all-zero output when ``m = 0``).
  Draws: ``p``, then a coin, top band iff it is ``< 0.5``.
* **Middle patch** (`middle_patch`): rows
  ``[⌊(1−p)H/2⌋, ⌊(1+p)H/2⌋)`` of every frame set to 0, ``p ~ U(lo, hi)``
  (RG's default range is the single value 0.5), then binarised as above
  (RG's resize back to its 64×64 input size is the identity on frames of
  that size).
* **Moving patch** (`moving_patch`): a black box at the bottom of the
  frame, ``⌊U(w_lo, w_hi)·W₀⌋`` wide and ``⌊U(h_lo, h_hi)·H⌋`` high, whose
  left edge is at ``⌊i·v⌋`` in frame ``i`` of the clip, ``v ~ U(v_lo,
  v_hi)`` pixels per frame (moving right; it leaves the frame once
  ``⌊i·v⌋ ≥ W₀``). No binarisation.
* **Moving pole**: the moving patch at full height.

Where it runs: after the cut, as the last op (RG's Compose order), on the
uint8 ``[S, H, W]`` frames. RG runs it on uncut 64×64 frames (its configs do
not cut). The half and middle patches act on rows only (a bilinear resize
from width W to the same width copies columns exactly), so cutting columns
before or after changes nothing except, in principle, ``m`` (255 either way
for silhouettes). The moving shapes do depend on the columns: their width
and position are computed in the uncut frame's coordinates, as RG's, with
the uncut width ``W₀ = max(H, W)`` (the pipeline's frames are square before
the cut) and the cut frame's left edge at ``(W₀ − W) // 2``.

Config: ``data.augment.occlusion_<param>`` for the fields of `Occlusion`
(``occlusion_prob`` is the half patch's probability, 0 = off; the others
are off unless set). Evaluation-time use: the ``half_patch`` corruption of
``gait_jax.data.corruptions`` (fixed ``p`` per severity). RG's test-time
stochastic occlusion is not built: evaluation here is deterministic.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, ClassVar

import cv2
import numpy as np

from gait_jax.data import augment_geometric as geometric

_PREFIX = 'data.augment'
_MAX_CHANNELS = 64  # Frames per cv2.resize call (stacked as channels).


def kept_rows(height: int, portion: float, top: bool) -> tuple[int, int]:
  """The visible band ``[start, stop)`` of rows for portion ``p``."""
  if top:
    return 0, int(np.floor((1.0 - portion) * height))
  return int(np.floor(portion * height)), height


def half_patch(frames: np.ndarray, portion: float, top: bool) -> np.ndarray:
  """Keeps one band of rows of every frame, resized back, binarised.

  Args:
    frames: uint8 [S, H, W].
    portion: p in [0, 1): the fraction of the height cut away.
    top: keep the top band (rows ``[0, ⌊(1−p)H⌋)``) if true, else the bottom
      band (rows ``[⌊pH⌋, H)``).

  Returns:
    A new uint8 [S, H, W] array with values in {0, m}.
  """
  num, height, width = frames.shape
  start, stop = kept_rows(height, portion, top)
  if stop - start < 1:
    raise ValueError(f'half_patch: portion {portion!r} leaves no rows of '
                     f'{height}.')
  out = np.empty((num, height, width), np.float64)
  for lo in range(0, num, _MAX_CHANNELS):
    band = np.ascontiguousarray(np.moveaxis(
        frames[lo:lo + _MAX_CHANNELS, start:stop], 0, -1), np.float64)
    resized = cv2.resize(band, (width, height),
                         interpolation=cv2.INTER_LINEAR)
    out[lo:lo + _MAX_CHANNELS] = np.moveaxis(
        resized.reshape(height, width, -1), -1, 0)
  return binarise(out)


def binarise(frames: np.ndarray) -> np.ndarray:
  """``m · [x > 0.5 m]`` with ``m`` the sequence's maximum, as uint8."""
  m = frames.max() if frames.size else 0.0
  if m <= 0:
    return np.zeros(frames.shape, np.uint8)
  return np.where(frames > 0.5 * m, np.rint(m), 0).astype(np.uint8)


def middle_patch(frames: np.ndarray, portion: float) -> np.ndarray:
  """Zeroes the centred band of rows of height fraction ``portion``.

  Args:
    frames: uint8 [S, H, W].
    portion: p in [0, 1]: rows ``[⌊(1−p)H/2⌋, ⌊(1+p)H/2⌋)`` are cleared.

  Returns:
    A new uint8 [S, H, W] array with values in {0, m}.
  """
  height = frames.shape[1]
  out = frames.copy()
  out[:, int((1.0 - portion) * height / 2):
      int((1.0 + portion) * height / 2)] = 0
  return binarise(out)


def moving_patch(frames: np.ndarray, width: int, height: int,
                 velocity: float) -> np.ndarray:
  """A black box at the bottom of the frames moving right.

  Args:
    frames: uint8 [S, H, W], possibly cut from ``W₀ = max(H, W)`` columns.
    width: the box's width in pixels of the uncut frame.
    height: its height in rows, from the bottom.
    velocity: pixels per frame; frame ``i``'s box starts at uncut column
      ``⌊i·velocity⌋``.

  Returns:
    A new uint8 [S, H, W] array.
  """
  num, rows, cols = frames.shape
  offset = (max(rows, cols) - cols) // 2
  out = frames.copy()
  if height <= 0 or width <= 0:
    return out
  for i in range(num):
    start = int(i * velocity) - offset
    lo, hi = max(start, 0), min(start + width, cols)
    if lo < hi:
      out[i, rows - height:, lo:hi] = 0
  return out


# The shapes in the order of RG's cumulative coin.
SHAPES = ('half', 'middle', 'patch', 'pole')


def draw(rng: np.random.Generator, probs: tuple[float, ...]) -> str | None:
  """The shape of one sequence (the wrapper's coin), or None."""
  u = rng.random()
  total = 0.0
  for shape, prob in zip(SHAPES, probs):
    total += prob
    if u < total:
      return shape
  return None


def _check_range(key: str, value: Any, lo: float, hi: float,
                 closed: bool = True) -> tuple[float, float]:
  ok = (not isinstance(value, (str, bytes)) and hasattr(value, '__len__')
        and len(value) == 2
        and all(isinstance(a, numbers.Real) and not isinstance(a, bool)
                for a in value))
  if ok:
    top_ok = value[1] <= hi if closed else value[1] < hi
    ok = lo <= value[0] <= value[1] and top_ok
  if not ok:
    bound = ']' if closed else ')'
    raise ValueError(f'{_PREFIX}.{key}={value!r}: must be two numbers '
                     f'(lo, hi) with lo <= hi inside [{lo}, {hi}{bound}.')
  return float(value[0]), float(value[1])


@dataclasses.dataclass(frozen=True)
class Occlusion:
  """``occlusion``: RG-Gait's wrapper over its four shapes (module doc).

  Config keys ``occlusion_<field>``. The four probabilities sum to at most
  1; the rest of the mass is no occlusion.

  Attributes:
    prob: probability of the half patch.
    portion: its (lo, hi), p ~ U(lo, hi), ``0 <= lo <= hi < 1``.
    middle_prob: probability of the middle patch.
    middle_portion: its (lo, hi) band height fraction, in [0, 1].
    patch_prob: probability of the moving patch.
    patch_width: its (lo, hi) width fraction of the uncut width.
    patch_height: its (lo, hi) height fraction.
    patch_velocity: its (lo, hi) pixels per frame.
    pole_prob: probability of the moving pole (full height).
    pole_width: its (lo, hi) width fraction.
    pole_velocity: its (lo, hi) pixels per frame.
  """
  name: ClassVar[str] = 'occlusion'
  stream: ClassVar[int] = 4  # Fixed per op: see `sampling.augment_rng`.
  before_cut: ClassVar[bool] = False  # Last, after the cut (see module doc).
  prob: float = 0.0
  portion: tuple[float, float] = (0.1, 0.6)
  middle_prob: float = 0.0
  middle_portion: tuple[float, float] = (0.5, 0.5)
  patch_prob: float = 0.0
  patch_width: tuple[float, float] = (0.4, 0.6)
  patch_height: tuple[float, float] = (0.3, 0.5)
  patch_velocity: tuple[float, float] = (0.5, 2.0)
  pole_prob: float = 0.0
  pole_width: tuple[float, float] = (0.4, 0.6)
  pole_velocity: tuple[float, float] = (0.5, 2.0)

  def __post_init__(self):
    for shape in SHAPES:
      key = 'prob' if shape == 'half' else f'{shape}_prob'
      geometric.check_prob(f'occlusion_{key}', getattr(self, key))
    if self.probs_sum > 1.0 + 1e-9:
      raise ValueError(
          f'{_PREFIX}.occlusion_*prob: the four shape probabilities sum to '
          f'{self.probs_sum!r} > 1.')
    ranges = {'portion': (0.0, 1.0, False), 'middle_portion': (0.0, 1.0, True),
              'patch_width': (0.0, 1.0, True), 'patch_height': (0.0, 1.0, True),
              'patch_velocity': (0.0, np.inf, False),
              'pole_width': (0.0, 1.0, True),
              'pole_velocity': (0.0, np.inf, False)}
    for key, (lo, hi, closed) in ranges.items():
      object.__setattr__(self, key, _check_range(
          f'occlusion_{key}', getattr(self, key), lo, hi, closed))

  @property
  def probs(self) -> tuple[float, float, float, float]:
    """The probabilities of `SHAPES`, in order."""
    return (self.prob, self.middle_prob, self.patch_prob, self.pole_prob)

  @property
  def probs_sum(self) -> float:
    return float(sum(self.probs))

  @property
  def enabled(self) -> bool:
    return self.probs_sum > 0

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Returns ``frames`` itself when the sequence is not occluded."""
    shape = draw(rng, self.probs)
    if shape is None:
      return frames
    if shape == 'half':
      p = float(rng.uniform(*self.portion))
      return half_patch(frames, p, bool(rng.random() < 0.5))
    if shape == 'middle':
      return middle_patch(frames, float(rng.uniform(*self.middle_portion)))
    rows, cols = frames.shape[1:]
    full_width = max(rows, cols)
    if shape == 'patch':
      width = int(rng.uniform(*self.patch_width) * full_width)
      height = int(rng.uniform(*self.patch_height) * rows)
      velocity = float(rng.uniform(*self.patch_velocity))
    else:
      width = int(rng.uniform(*self.pole_width) * full_width)
      height = rows
      velocity = float(rng.uniform(*self.pole_velocity))
    return moving_patch(frames, width, height, velocity)
