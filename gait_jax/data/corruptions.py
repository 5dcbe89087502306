"""Silhouette-level corruptions for robustness evaluation (RobustGait-style).

RobustGait (arXiv 2511.13065) corrupts the RGB video *before*
segmentation. Here corruptions act on the silhouettes themselves: the two
temporal ones (``freeze``, ``sampling``) are RobustGait's ops exactly (they
never look at pixels); the others are this project's silhouette-level
analogues. RGB-level corruptions (noise, blur, weather, low light, zoom) are
out of scope: they need the RGB video and a segmenter.

Every corruption is a pure function ``(frames uint8 [T, H, W], severity
1..5, rng) -> uint8 frames`` (listed in `CORRUPTIONS`); `corrupt` applies one
by name with a generator derived from ``(seed, crc32(key), crc32(name))``,
so the result depends only on the sequence key, the corruption, the severity
and the seed (never on Python's ``hash``, the process, or the order of
evaluation). The severity is deliberately *not* part of the seed: all
severities of one sequence share their draws (common random numbers), so the
occluders, flipped pixels and freeze anchors of severity s are contained in
those of severity s+1.

Families and parameters, indexed by severity s = 1..5:

* ``freeze``: k anchors, ``k = int(0.4T), int(0.2T), int(0.1T),
  int(max(0.05T, 2)), int(max(0.1T, 1))`` (RobustGait's values, clipped to
  1..T): frame 0 plus ``k − 1`` frames drawn without replacement from
  ``1..T−1``, sorted; each anchor is held until the next; length T. Our
  reading of "frame 0 forced in" keeps exactly k anchors. RobustGait's quirk
  is kept: severity 5 equals severity 3 for T >= 10 (and is milder than 4).
* ``sampling``: ``r = 2, 4, 8, 16, 32``: keep every r-th frame, repeat each r
  times; the length is ``⌈T/r⌉·r >= T``, not cut (as RobustGait).
* ``patch``: a rectangle of area fraction ``0.05, 0.1, 0.2, 0.3, 0.4`` of
  the frame, with the frame's aspect ratio, set to 0 on every frame at one
  position per sequence. Its centre is drawn uniformly in the bounding box
  of the sequence's foreground (the whole frame if there is none), then the
  rectangle is shifted to lie inside the frame.
* ``object_mask``: the project's stand-in for RobustGait's ``occlusion``
  (a pasted COCO-train2017 instance, which needs COCO and is not done
  here): a smooth random blob (an ellipse with a wavy boundary, random
  aspect and angle) of area about ``0.05 .. 0.4`` of the frame, placed like
  ``patch`` and set to 0 on every frame.
* ``pixel_flip``: in every frame, exactly ``round(p·H·W)`` pixels, ``p =
  0.02, 0.05, 0.1, 0.15, 0.2``, become ``255 − x``.
* ``erode`` / ``dilate``: ``cv2.erode`` / ``cv2.dilate`` with an elliptical
  kernel of radius ``s`` (size ``2s+1``), cv2's default borders.
* ``blur_threshold``: ``cv2.GaussianBlur`` with ``σ = s`` (kernel ``2⌈3σ⌉+1``,
  reflect-101 border) on float frames, then ``255 · [x >= 128]``.
* ``half_patch``: RG-Gait's consistent half patch
  (``augment_occlusion.half_patch``) with ``p = 0.1 .. 0.5``; the side is
  drawn per sequence.

Deterministic corruptions (``sampling``, ``erode``, ``dilate``,
``blur_threshold``) ignore the generator.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import cv2
import numpy as np

from gait_jax.data import augment_occlusion
from gait_jax.data import sampling

SEVERITIES = (1, 2, 3, 4, 5)
_STREAM = 0x636F7272  # 'corr': keeps these draws apart from training's.
_MAX_CHANNELS = 64

FREEZE_FRACTIONS = (0.4, 0.2, 0.1, 0.05, 0.1)
FREEZE_MINIMUMS = (0, 0, 0, 2, 1)
SAMPLING_RATES = (2, 4, 8, 16, 32)
OCCLUSION_AREAS = (0.05, 0.1, 0.2, 0.3, 0.4)
FLIP_FRACTIONS = (0.02, 0.05, 0.1, 0.15, 0.2)
MORPH_RADII = (1, 2, 3, 4, 5)
BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0, 5.0)
HALF_PATCH_PORTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)


# --- Temporal.


def freeze_anchor_count(length: int, severity: int) -> int:
  """RobustGait's k for a sequence of ``length`` frames, clipped to 1..T."""
  i = severity - 1
  k = int(max(FREEZE_FRACTIONS[i] * length, FREEZE_MINIMUMS[i]))
  return max(1, min(length, k))


def freeze(frames: np.ndarray, severity: int,
           rng: np.random.Generator) -> np.ndarray:
  """Holds k anchor frames (frame 0 among them) until the next; length T."""
  length = len(frames)
  k = freeze_anchor_count(length, severity)
  order = 1 + rng.permutation(max(length - 1, 0))  # Shared by severities.
  anchors = np.sort(np.concatenate([[0], order[:k - 1]])).astype(np.int64)
  # Frame t shows the last anchor <= t.
  held = anchors[np.searchsorted(anchors, np.arange(length), 'right') - 1]
  return frames[held]


def sampling_rate(frames: np.ndarray, severity: int,
                  rng: np.random.Generator) -> np.ndarray:
  """Every r-th frame, each repeated r times: length ``⌈T/r⌉·r``."""
  del rng
  r = SAMPLING_RATES[severity - 1]
  return np.repeat(frames[::r], r, axis=0)


# --- Occlusion.


def _centre(frames: np.ndarray, rng: np.random.Generator) -> tuple[float,
                                                                    float]:
  """(y, x) uniform in the foreground's bounding box (or the frame)."""
  _, height, width = frames.shape
  fg = frames.any(axis=0)
  if fg.any():
    rows, cols = np.nonzero(fg.any(axis=1))[0], np.nonzero(fg.any(axis=0))[0]
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
  else:
    y0, y1, x0, x1 = 0, height, 0, width
  return float(rng.uniform(y0, y1)), float(rng.uniform(x0, x1))


def patch_box(height: int, width: int, area: float,
              centre: tuple[float, float]) -> tuple[int, int, int, int]:
  """(top, left, h, w): the frame-shaped rectangle of ``area`` at ``centre``."""
  h = min(height, max(1, round(math.sqrt(area) * height)))
  w = min(width, max(1, round(math.sqrt(area) * width)))
  top = min(max(int(round(centre[0] - h / 2)), 0), height - h)
  left = min(max(int(round(centre[1] - w / 2)), 0), width - w)
  return top, left, h, w


def patch(frames: np.ndarray, severity: int,
          rng: np.random.Generator) -> np.ndarray:
  """Zeroes one rectangle (area fraction per severity) on every frame."""
  _, height, width = frames.shape
  top, left, h, w = patch_box(height, width, OCCLUSION_AREAS[severity - 1],
                              _centre(frames, rng))
  out = frames.copy()
  out[:, top:top + h, left:left + w] = 0
  return out


def blob_mask(height: int, width: int, area: float, centre, aspect: float,
              angle: float, waves: np.ndarray) -> np.ndarray:
  """bool [H, W]: a wavy ellipse of about ``area · H · W`` pixels.

  Boundary ``ρ(θ) = 1 + Σ_k a_k cos(kθ + φ_k)`` (``waves`` rows (a_k, φ_k),
  k = 2, 3, ...) in the ellipse's own coordinates, semi-axes ``√(aspect)·R``
  and ``R/√(aspect)`` with ``π R² = area·H·W``; the same shape scaled, so
  larger areas contain smaller ones.
  """
  radius = math.sqrt(area * height * width / math.pi)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  dy, dx = yy + 0.5 - centre[0], xx + 0.5 - centre[1]
  c, s = math.cos(angle), math.sin(angle)
  u = (c * dx + s * dy) / (radius * math.sqrt(aspect))
  v = (-s * dx + c * dy) * math.sqrt(aspect) / radius
  theta = np.arctan2(v, u)
  rho = np.ones_like(theta)
  for k, (amp, phase) in enumerate(waves, start=2):
    rho += amp * np.cos(k * theta + phase)
  return np.hypot(u, v) <= rho


def object_mask(frames: np.ndarray, severity: int,
                rng: np.random.Generator) -> np.ndarray:
  """Zeroes one blob (stand-in for RobustGait's COCO occluder; see doc)."""
  _, height, width = frames.shape
  centre = _centre(frames, rng)
  aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
  angle = float(rng.uniform(0.0, np.pi))
  waves = np.stack([rng.uniform(0.0, 0.12, 3),
                    rng.uniform(0.0, 2 * np.pi, 3)], axis=1)  # [3, 2]
  mask = blob_mask(height, width, OCCLUSION_AREAS[severity - 1], centre,
                   aspect, angle, waves)
  out = frames.copy()
  out[:, mask] = 0
  return out


# --- Silhouette noise.


def pixel_flip(frames: np.ndarray, severity: int,
               rng: np.random.Generator) -> np.ndarray:
  """Sets ``round(p·H·W)`` pixels of every frame to ``255 − x``."""
  num, height, width = frames.shape
  m = int(round(FLIP_FRACTIONS[severity - 1] * height * width))
  # The m smallest of one uniform per pixel: nested across severities.
  ranks = np.argsort(rng.random((num, height * width)), axis=1)[:, :m]
  out = frames.reshape(num, -1).copy()
  rows = np.arange(num)[:, None]
  out[rows, ranks] = 255 - out[rows, ranks]
  return out.reshape(frames.shape)


def _per_chunk(frames: np.ndarray, fn: Callable[[np.ndarray], np.ndarray],
               dtype=np.uint8) -> np.ndarray:
  """Applies a per-channel cv2 op to frames stacked as channels."""
  num, height, width = frames.shape
  out = np.empty((num, height, width), dtype)
  for lo in range(0, num, _MAX_CHANNELS):
    chunk = np.ascontiguousarray(
        np.moveaxis(frames[lo:lo + _MAX_CHANNELS], 0, -1), dtype)
    out[lo:lo + _MAX_CHANNELS] = np.moveaxis(
        fn(chunk).reshape(height, width, -1), -1, 0)
  return out


def _kernel(severity: int) -> np.ndarray:
  size = 2 * MORPH_RADII[severity - 1] + 1
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def erode(frames: np.ndarray, severity: int,
          rng: np.random.Generator) -> np.ndarray:
  """``cv2.erode`` with an elliptical kernel of radius ``severity``."""
  del rng
  kernel = _kernel(severity)
  return _per_chunk(frames, lambda x: cv2.erode(x, kernel))


def dilate(frames: np.ndarray, severity: int,
           rng: np.random.Generator) -> np.ndarray:
  """``cv2.dilate`` with an elliptical kernel of radius ``severity``."""
  del rng
  kernel = _kernel(severity)
  return _per_chunk(frames, lambda x: cv2.dilate(x, kernel))


def blur_threshold(frames: np.ndarray, severity: int,
                   rng: np.random.Generator) -> np.ndarray:
  """Gaussian blur (σ = ``BLUR_SIGMAS[s−1]``), then ``255·[x >= 128]``."""
  del rng
  sigma = BLUR_SIGMAS[severity - 1]
  size = 2 * math.ceil(3 * sigma) + 1
  blurred = _per_chunk(
      frames, lambda x: cv2.GaussianBlur(x, (size, size), sigma, sigma,
                                         borderType=cv2.BORDER_REFLECT_101),
      np.float32)
  return np.where(blurred >= 128, 255, 0).astype(np.uint8)


def half_patch(frames: np.ndarray, severity: int,
               rng: np.random.Generator) -> np.ndarray:
  """RG-Gait's half patch with ``p = HALF_PATCH_PORTIONS[s−1]``."""
  top = bool(rng.random() < 0.5)
  return augment_occlusion.half_patch(
      frames, HALF_PATCH_PORTIONS[severity - 1], top)


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    'freeze': freeze, 'sampling': sampling_rate, 'patch': patch,
    'object_mask': object_mask, 'pixel_flip': pixel_flip, 'erode': erode,
    'dilate': dilate, 'blur_threshold': blur_threshold,
    'half_patch': half_patch}


def get_corruption(name: str) -> Callable[..., np.ndarray]:
  """The corruption function ``name``; ValueError listing the valid ones."""
  if name not in CORRUPTIONS:
    raise ValueError(f'Unknown corruption {name!r}; valid: '
                     f'{", ".join(CORRUPTIONS)}.')
  return CORRUPTIONS[name]


def corrupted_length(name: str, length: int, severity: int) -> int:
  """The frame count `corrupt` returns for a ``length``-frame sequence."""
  get_corruption(name)
  if name == 'sampling':
    r = SAMPLING_RATES[severity - 1]
    return -(-int(length) // r) * r
  return int(length)


def corruption_rng(name: str, key: str, seed: int = 0) -> np.random.Generator:
  """The generator of corruption ``name`` on sequence ``key`` (any severity)."""
  return sampling.rng_for(seed, _STREAM, zlib.crc32(key.encode('utf-8')),
                          zlib.crc32(name.encode('utf-8')))


def corrupt(frames: np.ndarray, name: str, severity: int, key: str,
            seed: int = 0) -> np.ndarray:
  """Applies corruption ``name`` at ``severity`` to one sequence.

  Args:
    frames: uint8 [T, H, W].
    name: a key of `CORRUPTIONS`.
    severity: 1..5.
    key: the sequence's stable identifier (e.g. ``'001-nm-01-090'``).
    seed: an extra seed (0 by default).

  Returns:
    uint8 [T', H, W] (T' = T except for ``sampling``): a new array.

  Raises:
    ValueError: an unknown name (the message lists the valid ones), a
      severity outside 1..5, or frames that are not uint8 [T, H, W], T >= 1.
  """
  fn = get_corruption(name)
  if (isinstance(severity, bool) or not isinstance(severity, (int, np.integer))
      or severity not in SEVERITIES):
    raise ValueError(f'Corruption severity must be an integer in 1..5, got '
                     f'{severity!r}.')
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 3 or len(frames) < 1:
    raise ValueError(f'corrupt expects uint8 [T, H, W] frames with T >= 1, '
                     f'got {frames.dtype} {frames.shape}.')
  return fn(frames, int(severity), corruption_rng(name, key, seed))
