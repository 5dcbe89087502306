"""OpenGait's ``RandomPerspective`` and ``RandomHorizontalFlip`` (training).

OpenGait's DeepGaitV2 recipes and GaitBase's Gait3D/GREW ones train with
``Compose([RandomPerspective(0.2), BaseSilCuttingTransform,
RandomHorizontalFlip(0.2), RandomRotate(0.2)])``. The ops here join the
registry of ``gait_jax.data.augment`` (``perspective_<param>`` and
``hflip_<param>`` keys in ``config.data.augment``), which applies all ops in
that Compose order: perspective on the uint8 64×64 frames *before* cutting,
then the cut, then flip, rotate and erase on the cut frames.

Semantics kept from OpenGait (``opengait/data/transform.py``), each op drawing
``u ~ U(0, 1)`` first and acting iff ``u < prob``:

* **Perspective.** For frames of width ``w`` and height ``h``, ``c =
  (w // 44) * 10`` (10 for 64-wide frames). Four integer x-coordinates, drawn
  in this order: top-left ``TL`` in ``0..c-1`` (at y = 0), top-right ``TR`` in
  ``w-c..w-1`` (y = 0), bottom-left ``BL`` in ``0..c-1`` (y = h), bottom-right
  ``BR`` in ``w-c..w-1`` (y = h). The homography
  ``cv2.getPerspectiveTransform`` maps (TL, TR, BR, BL) onto (0, 0), (w, 0),
  (w, h), (0, h) (w and h, not w-1 and h-1, as OpenGait), and every frame is
  warped with the same matrix by ``cv2.warpPerspective`` on the uint8 frame
  (bilinear, zero border, cv2's uint8 rounding), one call per frame as
  OpenGait does (cv2's multi-channel uint8 warp does not give the same
  values). OpenGait crashes on frames narrower than 44 (``c = 0``); here that
  is a ValueError.
* **Horizontal flip.** Mirrors the width axis of every frame.

Randomness: a pure function of ``(seed, step, batch row, op)``
(``sampling.augment_rng``), one draw per sequence; see ``augment.py``.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, ClassVar

import cv2
import numpy as np

_PREFIX = 'data.augment'


def check_prob(key: str, value: Any) -> None:
  """A probability option of an augmentation op (every op module)."""
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not 0.0 <= value <= 1.0):
    raise ValueError(f'{_PREFIX}.{key}={value!r}: a probability must be a '
                     'number in [0, 1].')


# --- Perspective.


def perspective_margin(width: int) -> int:
  """OpenGait's ``c = int(w // 44) * 10``: the x-range of each corner."""
  return int(width // 44) * 10


def perspective_matrix(height: int, width: int,
                       corners: tuple[int, int, int, int]) -> np.ndarray:
  """The homography of one draw.

  Args:
    height: frame height h.
    width: frame width w.
    corners: x-coordinates (TL, TR, BL, BR), in OpenGait's draw order.

  Returns:
    float64 [3, 3] mapping (TL, 0), (TR, 0), (BR, h), (BL, h) onto (0, 0),
    (w, 0), (w, h), (0, h).
  """
  tl, tr, bl, br = corners
  src = np.float32([[tl, 0], [tr, 0], [br, height], [bl, height]])  # [4, 2]
  dst = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
  return cv2.getPerspectiveTransform(src, dst)


def warp_perspective(frames: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Warps every frame with one homography, as OpenGait (uint8 cv2 path).

  Args:
    frames: uint8 [S, H, W].
    matrix: float64 [3, 3].

  Returns:
    A new uint8 [S, H, W] array.
  """
  _, height, width = frames.shape
  out = np.empty_like(frames)
  for t, frame in enumerate(frames):  # One call per frame: see module doc.
    out[t] = cv2.warpPerspective(
        np.ascontiguousarray(frame), matrix, (width, height),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=0)  # [H, W]
  return out


def draw_perspective(rng: np.random.Generator, width: int,
                     prob: float) -> tuple[int, int, int, int] | None:
  """The corner x-coordinates (TL, TR, BL, BR) of one sequence, or None.

  Args:
    rng: this sequence's generator.
    width: frame width w (>= 44).
    prob: probability of warping.

  Returns:
    None when the sequence is not warped, else TL, BL in ``0..c-1`` and TR,
    BR in ``w-c..w-1`` with ``c = perspective_margin(w)``.

  Raises:
    ValueError: ``w < 44`` (no corner range; OpenGait crashes there too).
  """
  if not rng.random() < prob:
    return None
  c = perspective_margin(width)
  if c == 0:
    raise ValueError(f'RandomPerspective needs frames at least 44 wide (got '
                     f'{width}); it runs before cutting, on 64-wide frames.')
  tl = int(rng.integers(0, c))
  tr = int(rng.integers(width - c, width))
  bl = int(rng.integers(0, c))
  br = int(rng.integers(width - c, width))
  return tl, tr, bl, br


def random_perspective(frames: np.ndarray, rng: np.random.Generator,
                       prob: float) -> np.ndarray:
  """OpenGait's ``RandomPerspective(prob)`` on one (uncut) sequence.

  Args:
    frames: uint8 [S, H, W], W >= 44 (64 before cutting).
    rng: this sequence's generator.
    prob: probability of warping the sequence.

  Returns:
    uint8 [S, H, W]: ``frames`` itself when not warped, else a new array.
  """
  _, height, width = frames.shape
  corners = draw_perspective(rng, width, prob)
  if corners is None:
    return frames
  return warp_perspective(frames, perspective_matrix(height, width, corners))


# --- Horizontal flip.


def draw_flip(rng: np.random.Generator, prob: float) -> bool:
  """Whether one sequence is mirrored."""
  return bool(rng.random() < prob)


def random_hflip(frames: np.ndarray, rng: np.random.Generator,
                 prob: float) -> np.ndarray:
  """OpenGait's ``RandomHorizontalFlip(prob)``: mirrors the width axis.

  Args:
    frames: uint8 [S, H, W].
    rng: this sequence's generator.
    prob: probability of flipping the sequence.

  Returns:
    uint8 [S, H, W]: ``frames`` itself, or a flipped contiguous copy.
  """
  if not draw_flip(rng, prob):
    return frames
  return np.ascontiguousarray(frames[..., ::-1])  # [S, H, W]


# --- The ops as configured objects (registered in ``augment.AUGMENTATIONS``).


@dataclasses.dataclass(frozen=True)
class RandomPerspective:
  """``perspective``: see `random_perspective`. Config keys ``perspective_*``.

  Runs before cutting (``before_cut``), on the uint8 64×64 frames.

  Attributes:
    prob: probability of warping a sequence.
  """
  name: ClassVar[str] = 'perspective'
  stream: ClassVar[int] = 2  # Fixed per op: see `sampling.augment_rng`.
  before_cut: ClassVar[bool] = True
  prob: float = 0.0

  def __post_init__(self):
    check_prob('perspective_prob', self.prob)

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    return random_perspective(frames, rng, self.prob)


@dataclasses.dataclass(frozen=True)
class RandomHorizontalFlip:
  """``hflip``: see `random_hflip`. Config keys ``hflip_<field>``.

  Attributes:
    prob: probability of mirroring a sequence.
  """
  name: ClassVar[str] = 'hflip'
  stream: ClassVar[int] = 3
  before_cut: ClassVar[bool] = False
  prob: float = 0.0

  def __post_init__(self):
    check_prob('hflip_prob', self.prob)

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    return random_hflip(frames, rng, self.prob)
