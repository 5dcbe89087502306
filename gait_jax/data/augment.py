"""Training augmentation: OpenGait's ``RandomRotate`` and ``RandomErasing``.

The registry here also holds ``RandomPerspective`` and
``RandomHorizontalFlip`` (``augment_geometric.py``); `Augment` applies the
ops in OpenGait's Compose order: perspective on the uncut frames
(`Augment.pre_cut`), then, after cutting, flip, rotate and erase
(`Augment.__call__`).

OpenGait's GaitBase CASIA-B recipe (``gaitbase_da_casiab.yaml``) trains with
``Compose([BaseSilCuttingTransform, RandomRotate(prob=0.3, degree=10),
RandomErasing(prob=0.3)])``, applied to each sequence of the batch. Here both
run on the host, per sequence, on the cut uint8 frames ``[S, 64, 44]``, in
that order (rotate, then erase); the ``/ 255`` stays on the device.

Semantics kept from OpenGait (``opengait/data/transform.py``):

* **Rotate.** With probability ``prob`` one angle ``U(-degree, degree)``
  (degrees) for the whole sequence and ``cv2.warpAffine(frame, M, (W, H))``
  on every frame (bilinear, zero border) with ``M =
  cv2.getRotationMatrix2D((H // 2, W // 2), angle, 1)``. cv2 reads the centre
  as (x, y), so OpenGait rotates a 64×44 frame about x=32, y=22, not about
  its centre (x=22, y=32): the height/width order is swapped. We keep this
  quirk: a rotation about that point is a rotation about the centre plus a
  shift of ``2 sin(angle / 2) · 10√2`` px (up to 2.5 px at 10°).
* **Erase** (``per_frame=False``). With probability ``prob``, up to
  ``max_tries`` (100) tries of an area ``U(sl, sh) · H · W`` and an aspect
  ratio ``U(r1, 1 / r1)``: ``h = round(sqrt(area · aspect))``, ``w =
  round(sqrt(area / aspect))`` (Python's ``round``, half to even); the first
  try with ``h < H`` and ``w < W`` sets rows ``[top, top + h)`` and columns
  ``[left, left + w)`` of every frame to 0, with ``top`` and ``left`` drawn
  uniformly from ``0..H - h`` and ``0..W - w`` (both ends included, as
  ``random.randint``). After ``max_tries`` failures nothing is erased.

Differences from OpenGait:

* OpenGait warps the float64 frames after ``/ 255``; we warp the uint8 frames
  converted to float64 and round the result back to uint8, so a rotated
  value is within 0.5/255 of OpenGait's (``tests/test_augment.py`` measures
  it). We do not call ``cv2.warpAffine`` on the uint8 frames directly: cv2's
  uint8 path does not interpolate like its float64 path (with OpenCV 5.0 up
  to 8/255 apart at silhouette edges), while the float64 path is the one
  OpenGait runs.
* Randomness. OpenGait draws from Python's global ``random`` module in its
  main process. Here every draw is a pure function of ``(seed, step, batch
  position, op)`` (``sampling.augment_rng``), like frame sampling: a resumed
  run augments exactly as an uninterrupted one, every host augments its rows
  as the global batch's, and the worker count changes nothing. Each op has
  its own stream, so turning one off leaves the other's draws unchanged.
  Draws are per sequence for every frame sampler. OpenGait draws per
  sequence for ``fixed_*`` samplers only: with ``unfixed_*``/``all_*`` its
  collate function concatenates a device batch into one array, so one draw
  augments every sequence of that device batch alike (a quirk not kept).

Config: ``config.data.augment`` (see ``gait_jax.config``) holds one key
``<op>_<param>`` per parameter of a registered op, e.g. ``rotate_prob``; an
op with probability 0 is off. `from_config` validates it and builds the
`Augment` the training loader applies. Evaluation never augments.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar, Mapping

import cv2
import numpy as np

from gait_jax.data import augment_geometric as geometric
from gait_jax.data import augment_occlusion as occlusion
from gait_jax.data import sampling

# Frames warped per cv2 call: they are stacked as channels, and the cv2 Python
# binding rejects arrays with a few hundred channels.
_MAX_CHANNELS = 64

_PREFIX = 'data.augment'


def _is_real(value: Any) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


# --- The ops as functions on one sequence, uint8 [S, H, W].


def rotation_matrix(height: int, width: int, angle: float) -> np.ndarray:
  """OpenGait's rotation matrix, with its swapped centre.

  Args:
    height: frame height H (64).
    width: frame width W (44).
    angle: degrees, counter-clockwise (cv2's convention).

  Returns:
    float64 [2, 3], ``cv2.getRotationMatrix2D((H // 2, W // 2), angle, 1)``:
    a rotation about x = H // 2, y = W // 2 (OpenGait's quirk, kept).
  """
  return cv2.getRotationMatrix2D((height // 2, width // 2), float(angle), 1.0)


def rotate(frames: np.ndarray, angle: float) -> np.ndarray:
  """Rotates every frame by ``angle`` degrees, as OpenGait's ``RandomRotate``.

  Bilinear, zero border, about OpenGait's centre (see `rotation_matrix`),
  computed in float64 and rounded to the nearest uint8.

  Args:
    frames: uint8 [S, H, W].
    angle: degrees, counter-clockwise.

  Returns:
    A new uint8 [S, H, W] array.
  """
  num, height, width = frames.shape
  matrix = rotation_matrix(height, width, angle)  # [2, 3]
  out = np.empty_like(frames)
  for start in range(0, num, _MAX_CHANNELS):
    # Frames as channels: one cv2 call per chunk, same result per frame.
    chunk = np.ascontiguousarray(
        np.moveaxis(frames[start:start + _MAX_CHANNELS], 0, -1),
        np.float64)  # [H, W, s]
    warped = cv2.warpAffine(chunk, matrix, (width, height),
                            flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped = warped.reshape(height, width, -1)  # cv2 drops a 1-channel axis.
    # Non-negative bilinear weights, zero border: values stay in [0, 255].
    out[start:start + _MAX_CHANNELS] = np.moveaxis(
        np.rint(warped, out=warped), -1, 0)  # [s, H, W]
  return out


def draw_rotation(rng: np.random.Generator, prob: float,
                  degree: float) -> float | None:
  """The angle of one sequence (degrees), or None when it is not rotated."""
  if not rng.random() < prob:
    return None
  return float(rng.uniform(-degree, degree))


def random_rotate(frames: np.ndarray, rng: np.random.Generator, prob: float,
                  degree: float) -> np.ndarray:
  """OpenGait's ``RandomRotate(prob, degree)`` on one sequence.

  Args:
    frames: uint8 [S, H, W].
    rng: this sequence's generator.
    prob: probability of rotating the sequence.
    degree: the angle is drawn from U(-degree, degree), in degrees.

  Returns:
    uint8 [S, H, W]: ``frames`` itself when not rotated, else a new array.
  """
  angle = draw_rotation(rng, prob, degree)
  return frames if angle is None else rotate(frames, angle)


def erase(frames: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
  """Sets one rectangle of every frame to 0.

  Args:
    frames: uint8 [S, H, W].
    box: (top, left, h, w): rows ``top..top+h-1``, columns ``left..left+w-1``.

  Returns:
    A new uint8 [S, H, W] array.
  """
  top, left, h, w = box
  out = frames.copy()
  out[:, top:top + h, left:left + w] = 0
  return out


def draw_erase_box(rng: np.random.Generator, height: int, width: int,
                   prob: float, sl: float = 0.05, sh: float = 0.2,
                   r1: float = 0.3,
                   max_tries: int = 100) -> tuple[int, int, int, int] | None:
  """The rectangle of one sequence, or None when nothing is erased.

  Args:
    rng: this sequence's generator.
    height: frame height H.
    width: frame width W.
    prob: probability of erasing.
    sl: smallest area, as a fraction of H·W.
    sh: largest area, as a fraction of H·W.
    r1: aspect ratios h/w are drawn from U(r1, 1 / r1).
    max_tries: tries before giving up.

  Returns:
    (top, left, h, w) or None.
  """
  if not rng.random() < prob:
    return None
  for _ in range(max_tries):
    area = rng.uniform(sl, sh) * height * width
    aspect = rng.uniform(r1, 1.0 / r1)
    h = int(round(math.sqrt(area * aspect)))
    w = int(round(math.sqrt(area / aspect)))
    if w < width and h < height:
      top = int(rng.integers(0, height - h + 1))  # randint: both ends.
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  return None


def random_erase(frames: np.ndarray, rng: np.random.Generator, prob: float,
                 sl: float = 0.05, sh: float = 0.2, r1: float = 0.3,
                 max_tries: int = 100) -> np.ndarray:
  """OpenGait's ``RandomErasing(prob, sl, sh, r1, per_frame=False)``.

  Args:
    frames: uint8 [S, H, W].
    rng: this sequence's generator.
    prob: probability of erasing.
    sl: smallest area, as a fraction of H·W.
    sh: largest area, as a fraction of H·W.
    r1: aspect ratios h/w are drawn from U(r1, 1 / r1).
    max_tries: tries before giving up.

  Returns:
    uint8 [S, H, W]: ``frames`` itself when nothing is erased, else a new
    array.
  """
  box = draw_erase_box(rng, frames.shape[1], frames.shape[2], prob, sl, sh,
                       r1, max_tries)
  return frames if box is None else erase(frames, box)


# --- The ops as configured objects, and their registry.


@dataclasses.dataclass(frozen=True)
class RandomRotate:
  """``rotate``: see `random_rotate`. Config keys ``rotate_<field>``.

  Attributes:
    prob: probability of rotating a sequence.
    degree: largest absolute angle, in degrees (in [0, 180]).
  """
  name: ClassVar[str] = 'rotate'
  stream: ClassVar[int] = 0  # Fixed per op: see `sampling.augment_rng`.
  before_cut: ClassVar[bool] = False  # Runs on the cut frames.
  prob: float = 0.0
  degree: float = 10.0

  def __post_init__(self):
    geometric.check_prob('rotate_prob', self.prob)
    if not _is_real(self.degree) or not 0.0 <= self.degree <= 180.0:
      raise ValueError(f'{_PREFIX}.rotate_degree={self.degree!r}: must be a '
                       'number of degrees in [0, 180].')

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    return random_rotate(frames, rng, self.prob, self.degree)


@dataclasses.dataclass(frozen=True)
class RandomErase:
  """``erase``: see `random_erase`. Config keys ``erase_<field>``.

  Attributes:
    prob: probability of erasing a sequence.
    area: (sl, sh), the range of the erased area as a fraction of H·W,
      ``0 < sl <= sh <= 1``.
    ratio: r1, aspect ratios are drawn from U(r1, 1 / r1), ``0 < r1 <= 1``.
    max_tries: tries before giving up (OpenGait: 100).
  """
  name: ClassVar[str] = 'erase'
  stream: ClassVar[int] = 1
  before_cut: ClassVar[bool] = False
  prob: float = 0.0
  area: tuple[float, float] = (0.05, 0.2)
  ratio: float = 0.3
  max_tries: int = 100

  def __post_init__(self):
    geometric.check_prob('erase_prob', self.prob)
    area = self.area
    if (isinstance(area, (str, bytes)) or not hasattr(area, '__len__')
        or len(area) != 2 or not all(_is_real(a) for a in area)
        or not 0.0 < area[0] <= area[1] <= 1.0):
      raise ValueError(f'{_PREFIX}.erase_area={area!r}: must be two numbers '
                       '(sl, sh) with 0 < sl <= sh <= 1.')
    object.__setattr__(self, 'area', (float(area[0]), float(area[1])))
    if not _is_real(self.ratio) or not 0.0 < self.ratio <= 1.0:
      raise ValueError(f'{_PREFIX}.erase_ratio={self.ratio!r}: must be a '
                       'number in (0, 1]; aspect ratios are drawn from '
                       'U(r1, 1/r1).')
    if (not isinstance(self.max_tries, numbers.Integral)
        or isinstance(self.max_tries, bool) or self.max_tries < 1):
      raise ValueError(f'{_PREFIX}.erase_max_tries={self.max_tries!r}: must '
                       'be a positive integer.')

  def __call__(self, frames: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    return random_erase(frames, rng, self.prob, self.area[0], self.area[1],
                        self.ratio, self.max_tries)


# Registered ops, in the order they are applied (OpenGait's Compose order;
# the cut comes after the `before_cut` ones).
AUGMENTATIONS = {op.name: op for op in (
    geometric.RandomPerspective, geometric.RandomHorizontalFlip, RandomRotate,
    RandomErase, occlusion.Occlusion)}


@dataclasses.dataclass(frozen=True)
class Augment:
  """The ops applied to each training sequence, in order.

  Attributes:
    ops: op instances (those with probability 0 left out).
  """
  ops: tuple[Any, ...] = ()

  def __bool__(self) -> bool:
    return bool(self.ops)

  def _apply(self, frames, seed, step, position, before_cut):
    for op in self.ops:
      if op.before_cut == before_cut:
        frames = op(frames,
                    sampling.augment_rng(seed, step, position, op.stream))
    return frames

  def pre_cut(self, frames: np.ndarray, seed: int, step: int,
              position: int) -> np.ndarray:
    """The ops before cutting (perspective), on uncut uint8 [S, H, 64].

    Same arguments and result as `__call__`, on the frames before cutting.
    """
    return self._apply(frames, seed, step, position, True)

  def __call__(self, frames: np.ndarray, seed: int, step: int,
               position: int) -> np.ndarray:
    """The ops after cutting (flip, rotate, erase) on one sequence.

    Args:
      frames: uint8 [S, H, W], the cut frames of one sequence.
      seed: the run's data seed.
      step: the training step.
      position: the sequence's row in the global batch.

    Returns:
      uint8 [S, H, W] (possibly ``frames`` itself).
    """
    return self._apply(frames, seed, step, position, False)


def get_augmentation(name: str, **params: Any):
  """One registered op by name, e.g. ``get_augmentation('rotate', prob=0.3)``.

  Raises:
    ValueError: an unknown name (the message lists the valid ones) or an
      invalid parameter value.
  """
  if name not in AUGMENTATIONS:
    raise ValueError(f'Unknown augmentation {name!r}; valid: '
                     f'{", ".join(AUGMENTATIONS)}.')
  return AUGMENTATIONS[name](**params)


def from_config(config: Mapping[str, Any]) -> Augment:
  """Builds and validates the augmentation of ``config.data.augment``.

  Args:
    config: keys ``<op>_<param>`` (``rotate_prob``, ``erase_area``, ...);
      parameters not given keep the op's defaults (probability 0: off).

  Returns:
    The `Augment` (empty, and false, when every probability is 0).

  Raises:
    ValueError: a key naming an unknown op or parameter (the message lists the
      valid ones), or an invalid value (the message names the key).
  """
  params = {name: {} for name in AUGMENTATIONS}
  for key, value in config.items():
    name, _, field = key.partition('_')
    if name not in AUGMENTATIONS:
      raise ValueError(f'{_PREFIX}.{key}: unknown augmentation {name!r}; '
                       f'valid: {", ".join(AUGMENTATIONS)} (keys '
                       '<augmentation>_<parameter>).')
    fields = [f.name for f in dataclasses.fields(AUGMENTATIONS[name])]
    if field not in fields:
      raise ValueError(f'{_PREFIX}.{key}: unknown parameter {field!r} of '
                       f'{name!r}; valid: '
                       f'{", ".join(f"{name}_{f}" for f in fields)}.')
    params[name][field] = value
  ops = [get_augmentation(name, **kw) for name, kw in params.items()]
  return Augment(ops=tuple(op for op in ops
                           if getattr(op, 'enabled', op.prob > 0)))
