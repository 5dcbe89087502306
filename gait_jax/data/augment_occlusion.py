"""RG-Gait's consistent half-patch occlusion (training and evaluation).

RG-Gait (arXiv 2507.10978) trains with
``ConsistentHalfPatchTwoTypesResized(prob, portion_range=[0.1, 0.6])`` inside
its ``Occlusion`` wrapper, the last op of its Compose. Semantics, per
sequence (`half_patch`):

* a portion ``p`` and a side: the *top* band, rows ``[0, ⌊(1−p)H⌋)``, or the
  *bottom* band, rows ``[⌊pH⌋, H)``, stays visible; the rest is cut away;
* every frame's kept band is resized back to ``H×W`` (``cv2.resize``,
  bilinear, on float64 frames as RG's float frames);
* binarised to ``m · [x > 0.5 m]`` with ``m`` the maximum of the resized
  sequence (rounded to uint8; 255 for silhouettes with a full interior);
  all-zero output when ``m = 0``.

The same ``p`` and side hold for all frames. Draws (`draw_half_patch`), in
this order from the sequence's generator: ``u ~ U(0, 1)``, the op acts iff
``u < prob`` (RG's wrapper coin); ``p ~ U(lo, hi)``; a second coin, top band
iff it is ``< 0.5``.

Where it runs: after the cut, as the last op (RG's Compose order), on the
uint8 ``[S, 64, 44]`` frames. RG itself runs it on uncut 64×64 frames (its
configs do not cut). The two agree: the op crops and resizes rows only, and a
bilinear resize from width W to the same width W copies columns exactly, so
cutting columns before or after changes nothing except, in principle, ``m``
(the maximum over the cut-away columns; 255 either way for silhouettes).

Config: ``data.augment.occlusion_prob`` (0 = off) and, not in the base
config, ``occlusion_portion`` (default (0.1, 0.6)). Evaluation-time use:
the ``half_patch`` corruption of ``gait_jax.data.corruptions`` (fixed ``p``
per severity). RG's other shapes (middle patch, moving patch, pole) and its
test-time stochastic occlusion are not implemented.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, ClassVar

import cv2
import numpy as np

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
  m = out.max() if out.size else 0.0
  if m <= 0:
    return np.zeros_like(frames)
  return np.where(out > 0.5 * m, np.rint(m), 0).astype(np.uint8)


def draw_half_patch(rng: np.random.Generator, prob: float,
                    portion: tuple[float, float] = (0.1, 0.6)
                    ) -> tuple[float, bool] | None:
  """(p, top) of one sequence, or None when it is not occluded."""
  if not rng.random() < prob:
    return None
  p = float(rng.uniform(portion[0], portion[1]))
  return p, bool(rng.random() < 0.5)


def random_half_patch(frames: np.ndarray, rng: np.random.Generator,
                      prob: float,
                      portion: tuple[float, float] = (0.1, 0.6)
                      ) -> np.ndarray:
  """RG's ``Occlusion([ConsistentHalfPatch(prob, portion)])`` on a sequence.

  Returns ``frames`` itself when the sequence is not occluded.
  """
  draw = draw_half_patch(rng, prob, portion)
  return frames if draw is None else half_patch(frames, *draw)


@dataclasses.dataclass(frozen=True)
class ConsistentHalfPatch:
  """``occlusion``: see `random_half_patch`. Config keys ``occlusion_*``.

  Attributes:
    prob: probability of occluding a sequence.
    portion: (lo, hi), p ~ U(lo, hi), ``0 <= lo <= hi < 1``.
  """
  name: ClassVar[str] = 'occlusion'
  stream: ClassVar[int] = 4  # Fixed per op: see `sampling.augment_rng`.
  before_cut: ClassVar[bool] = False  # Last, after the cut (see module doc).
  prob: float = 0.0
  portion: tuple[float, float] = (0.1, 0.6)

  def __post_init__(self):
    if (not isinstance(self.prob, numbers.Real) or isinstance(self.prob, bool)
        or not 0.0 <= self.prob <= 1.0):
      raise ValueError(f'{_PREFIX}.occlusion_prob={self.prob!r}: a '
                       'probability must be a number in [0, 1].')
    pr: Any = self.portion
    if (isinstance(pr, (str, bytes)) or not hasattr(pr, '__len__')
        or len(pr) != 2
        or not all(isinstance(a, numbers.Real) and not isinstance(a, bool)
                   for a in pr)
        or not 0.0 <= pr[0] <= pr[1] < 1.0):
      raise ValueError(f'{_PREFIX}.occlusion_portion={pr!r}: must be two '
                       'numbers (lo, hi) with 0 <= lo <= hi < 1.')
    object.__setattr__(self, 'portion', (float(pr[0]), float(pr[1])))

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    return random_half_patch(frames, rng, self.prob, self.portion)
