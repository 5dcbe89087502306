"""Nuisances of the wild renderer, applied to camera-space silhouettes.

Each function takes bool silhouettes [T, R, C] of one tracked person crop
(`wild.py` renders them: the body spans rows `margin .. margin + body_rows`
and is centred horizontally in every frame) and a generator of its own, and
draws all of its random numbers whatever its strength `k`, so that changing
one knob never shifts the draws of another nuisance, and the same seed gives
the same occluder or cut at every strength. `k = 0` leaves the frames
untouched. Probabilities grow linearly with `k` and saturate at 1.
"""

from __future__ import annotations

import numpy as np

# Chance per sequence at strength 1 (occluder, frame-border event).
OCCLUSION_RATE = 0.35
BORDER_RATE = 0.25
# Per-frame chances at strength 1 (segmentation noise).
HOLE_RATE = 0.2
BLOB_RATE = 0.1
MORPH_RATE = 0.2  # chance per sequence of a 1-pixel boundary shift
FLICKER_RATE = 0.1  # extra 1-pixel erosion or dilation in a frame
RAGGED = 0.6  # chance that a patch of the boundary ring flips
DROP_RATE = 0.05
BURST_RATE = 0.2  # chance per sequence of a run of dropped frames
OCCLUDER_KINDS = ('low', 'pole', 'blob')


def _chance(k: float, rate: float) -> float:
  return float(min(1.0, max(0.0, k) * rate))


def _ellipses(shape: tuple[int, int], cy: np.ndarray, cx: np.ndarray,
              ry: np.ndarray, rx: np.ndarray) -> np.ndarray:
  """Union of ellipses per frame: params [T, S] -> bool [T, R, C]."""
  r, c = shape
  yy = np.arange(r, dtype=np.float32)[None, None, :, None] + 0.5
  xx = np.arange(c, dtype=np.float32)[None, None, None, :] + 0.5
  d = (np.square((yy - cy[..., None, None]) / ry[..., None, None])
       + np.square((xx - cx[..., None, None]) / rx[..., None, None]))
  return np.any(d <= 1.0, axis=1)  # [T, R, C]


def _ramp(num_frames: int, t0: float, t1: float) -> np.ndarray:
  """[T] 0 before frame t0, 1 after t1, linear in between."""
  t = np.arange(num_frames, dtype=np.float64)
  return np.clip((t - t0) / max(t1 - t0, 1e-6), 0.0, 1.0)


def occluder_mask(shape: tuple[int, int, int], rng: np.random.Generator,
                  k: float, body_rows: int, margin: int) -> np.ndarray:
  """Pixels hidden by a static scene object (a low wall, a pole or a blob).

  The object is static in the scene, so in the tracked crop it slides across
  the body: it covers part of the body for a stretch of the sequence (a
  random 30-80 % of its length, centred on a random frame).

  Args:
    shape: (T, R, C) of the silhouettes.
    rng: generator of this nuisance.
    k: strength; the chance of an occluder is `OCCLUSION_RATE * k`.
    body_rows: body height in pixels.
    margin: rows above the body's top.

  Returns:
    bool [T, R, C], True where the object hides the person (all False when
    the sequence has no occluder).
  """
  t, r, c = shape
  u, kind = rng.uniform(), OCCLUDER_KINDS[int(rng.integers(3))]
  size = rng.uniform(0.0, 1.0, 3)
  overlap, centre_frame = rng.uniform(0.3, 0.8), rng.uniform(0.0, 1.0) * t
  sign = 1.0 if rng.uniform() < 0.5 else -1.0
  if u >= _chance(k, OCCLUSION_RATE):
    return np.zeros(shape, bool)
  body_w = 0.4 * body_rows  # typical body width, for the crossing speed
  if kind == 'low':  # wall, car, bench: covers the legs from below
    width = (0.6 + 0.9 * size[0]) * body_rows
    top = margin + body_rows * (0.5 + 0.3 * size[1])
  elif kind == 'pole':  # pole, tree trunk, doorframe: a tall narrow bar
    width = (0.06 + 0.1 * size[0]) * body_rows
    top = -1.0
  else:  # blob: bush, another person, a sign
    ry, rx = (0.15 + 0.2 * size[:2]) * body_rows
    width = 2 * rx
    cy = margin + body_rows * (0.2 + 0.6 * size[2])
  speed = sign * (width + body_w) / (overlap * t)  # columns per frame
  cx = c / 2 + speed * (np.arange(t) - centre_frame)  # [T]
  if kind == 'blob':
    return _ellipses((r, c), np.full((t, 1), cy), cx[:, None],
                     np.full((t, 1), ry), np.full((t, 1), rx))
  cols = np.arange(c)[None, :] + 0.5  # [1, C]
  in_cols = np.abs(cols - cx[:, None]) <= width / 2  # [T, C]
  in_rows = np.arange(r) + 0.5 >= top  # [R]
  return in_cols[:, None, :] & in_rows[None, :, None]


def border_mask(clean: np.ndarray, rng: np.random.Generator, k: float,
                body_rows: int) -> np.ndarray:
  """Pixels outside the camera frame as the person enters or leaves it.

  Side events cut 25-60 % of the body width at the left or right frame edge,
  growing to that over the last stretch of the sequence (leaving) or
  shrinking from it over the first (entering); bottom events cut 10-35 % of
  the body height from below (the person close to the camera).

  Args:
    clean: bool [T, R, C] silhouettes (locate the body per frame).
    rng: generator of this nuisance.
    k: strength; the chance of an event is `BORDER_RATE * k`.
    body_rows: body height in pixels.

  Returns:
    bool [T, R, C], True outside the camera frame.
  """
  t, r, c = clean.shape
  u, side = rng.uniform(), rng.uniform()
  depth, span = rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.6)
  leaving, from_left = rng.uniform() < 0.5, rng.uniform() < 0.5
  if u >= _chance(k, BORDER_RATE):
    return np.zeros(clean.shape, bool)
  ramp = (_ramp(t, (1 - span) * t, t - 1) if leaving
          else 1 - _ramp(t, 0, span * t))  # [T] 0 = no cut, 1 = deepest
  cols_on = clean.any(1)  # [T, C]
  rows_on = clean.any(2)  # [T, R]
  if side < 0.7:
    cut = (0.25 + 0.35 * depth) * ramp
    has = cols_on.any(1)
    first = np.where(has, np.argmax(cols_on, 1), c // 2)
    last = np.where(has, c - 1 - np.argmax(cols_on[:, ::-1], 1), c // 2)
    width = last - first + 1
    x = np.arange(c)[None, :]
    if from_left:
      out = x < (first + cut * width)[:, None]
    else:
      out = x > (last - cut * width)[:, None]
    out &= (cut > 0)[:, None]
    return np.broadcast_to(out[:, None, :], clean.shape).copy()
  cut = (0.1 + 0.25 * depth) * ramp
  bottom = np.where(rows_on.any(1), r - 1 - np.argmax(rows_on[:, ::-1], 1),
                    r - 1)
  y = np.arange(r)[None, :]
  out = (y > (bottom - cut * body_rows)[:, None]) & (cut > 0)[:, None]
  return np.broadcast_to(out[:, :, None], clean.shape).copy()


def _shift_or(x: np.ndarray) -> np.ndarray:
  """3x3 dilation of bool [T, R, C] (zero outside)."""
  p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
  out = np.zeros_like(x)
  for dy in range(3):
    for dx in range(3):
      out |= p[:, dy:dy + x.shape[1], dx:dx + x.shape[2]]
  return out


def _random_pixels(masks: np.ndarray, u: np.ndarray) -> tuple[np.ndarray,
                                                              np.ndarray]:
  """Row and column of a foreground pixel per frame, picked by u [T, S]."""
  t, r, c = masks.shape
  cum = np.cumsum(masks.reshape(t, -1), 1, dtype=np.int32)  # [T, R * C]
  count = cum[:, -1:]  # [T, 1]
  pick = np.minimum((u * count).astype(np.int32), np.maximum(count - 1, 0))
  idx = np.stack([np.argmax(cum > pick[:, s:s + 1], 1)
                  for s in range(u.shape[1])], 1)  # [T, S]
  idx = np.where(count > 0, idx, (r // 2) * c + c // 2)
  return (idx // c).astype(np.float32) + 0.5, (idx % c).astype(
      np.float32) + 0.5


def segmentation_noise(masks: np.ndarray, rng: np.random.Generator,
                       k: float, body_rows: int) -> tuple[np.ndarray,
                                                          np.ndarray]:
  """Segmentation errors: holes, spurious blobs, boundary shifts, drops.

  Holes (1-3 small ellipses erased inside the body) and blobs (1-2 ellipses
  added at the body's edge) hit a frame with chance `HOLE_RATE * k` and
  `BLOB_RATE * k`; the boundary is dilated (2/3) or eroded (1/3) by a
  ragged pixel (`RAGGED` of the ring flips) in the whole sequence with
  chance `MORPH_RATE * k`, and by one more either way in a frame with
  chance `FLICKER_RATE * k` (net erosion at most one); frames are dropped independently (`DROP_RATE * k`) and, with
  chance `BURST_RATE * k` per sequence, in a run of 2-6 frames.

  Args:
    masks: bool [T, R, C] silhouettes.
    rng: generator of this nuisance.
    k: strength (0 = off).
    body_rows: body height in pixels (sizes the holes and blobs).

  Returns:
    (noisy bool [T, R, C], dropped bool [T]).
  """
  t, r, c = masks.shape
  u_hole, u_blob, u_flick = rng.uniform(size=(3, t))
  n_hole, n_blob = rng.integers(1, 4, t), rng.integers(1, 3, t)
  hole_at, blob_at = rng.uniform(size=(2, t, 3))
  hole_r = rng.uniform(0.015, 0.045, (t, 3, 2)) * body_rows
  blob_r = rng.uniform(0.02, 0.06, (t, 3, 2)) * body_rows
  blob_off = rng.normal(0.0, 0.05, (t, 3, 2)) * body_rows
  u_morph, grow_seq = rng.uniform(), rng.uniform() < 2 / 3
  flick_sign = np.where(rng.uniform(size=t) < 0.5, -1, 1)
  u_drop, u_burst = rng.uniform(size=t), rng.uniform()
  cells = rng.random((t, r // 3 + 1, c // 3 + 1), dtype=np.float32)
  u_pixel = np.repeat(np.repeat(cells < RAGGED, 3, 1), 3, 2)[:, :r, :c]
  burst_len, burst_at = int(rng.integers(2, 7)), rng.uniform()
  dropped = np.zeros(t, bool)
  if k <= 0:
    return masks, dropped

  out = masks.copy()
  slot = np.arange(3)[None, :]
  holes = (u_hole < _chance(k, HOLE_RATE))[:, None] & (slot < n_hole[:, None])
  blobs = (u_blob < _chance(k, BLOB_RATE))[:, None] & (slot < n_blob[:, None])
  interior = ~_shift_or(~_shift_or(~masks))  # holes open inside the body
  hy, hx = _random_pixels(np.where(interior.any((1, 2), keepdims=True),
                                   interior, masks), hole_at)
  by, bx = _random_pixels(masks, blob_at)
  for on, cy, cx, rad, fill in (
      (holes, hy, hx, hole_r, False),
      (blobs, by + blob_off[..., 0], bx + blob_off[..., 1], blob_r, True)):
    frames = np.flatnonzero(on.any(1))
    if frames.size:
      # Inactive slots get a zero-size ellipse (no pixels).
      scale = np.where(on[frames], 1.0, 1e-6)[..., None]
      rad = rad[frames] * scale
      shape = _ellipses((r, c), cy[frames], cx[frames], rad[..., 0],
                        rad[..., 1])
      out[frames] = out[frames] | shape if fill else out[frames] & ~shape

  # Boundary: per-frame radius (negative erodes, positive dilates).
  flicker = np.where(u_flick < _chance(k, FLICKER_RATE), flick_sign, 0)
  seq_radius = ((1 if grow_seq else -1)
                if u_morph < _chance(k, MORPH_RATE) else 0)
  radius = np.clip(seq_radius + flicker, -1, 2)  # [T]
  for step in range(1, int(np.abs(radius).max(initial=0)) + 1):
    # Ragged: the ring flips in 3x3-pixel patches, each with chance RAGGED,
    # so the boundary wobbles and thin limbs thin out rather than vanish.
    grow, shrink = radius >= step, -radius >= step
    if grow.any():
      ring = _shift_or(out[grow]) & ~out[grow]
      out[grow] |= ring & u_pixel[grow]
    if shrink.any():
      ring = out[shrink] & _shift_or(~out[shrink])
      out[shrink] &= ~(ring & u_pixel[shrink])

  dropped = u_drop < min(0.5, _chance(k, DROP_RATE))
  if u_burst < _chance(k, BURST_RATE):
    start = int(burst_at * max(t - burst_len, 0))
    dropped[start:start + burst_len] = True
  return out, dropped
