"""Projection of 3-D body primitives and binary silhouette rasterisation.

Orthographic projection keeps the shape class of every primitive: a tapered
capsule (convex hull of two spheres) becomes the convex hull of two discs, an
ellipsoid becomes an ellipse. Each of these is convex, so on every pixel row
it covers one interval of x that has a closed form. The rasteriser computes
these intervals for all frames, primitives and rows at once and fills their
union with a difference array and a cumulative sum: no per-pixel distance
tests, O(T * H * (primitives + W)) work per sequence.

Each frame is normalised like OpenGait's pretreatment: the silhouette spans
the full frame height and its horizontal mass median is moved to the centre
column.
"""

from __future__ import annotations

import numpy as np

_EMPTY_LO, _EMPTY_HI = np.inf, -np.inf


def camera_axes(view_deg: np.ndarray,
                elevation_deg: float) -> np.ndarray:
  """Image axes of cameras around the body.

  Args:
    view_deg: [T] azimuth per frame: 0 = the body walks towards the camera,
      90 = side view, 180 = walks away.
    elevation_deg: camera elevation (looking down at the body).

  Returns:
    [T, 2, 3] rows: image right axis, image up axis (world units).
  """
  az, el = np.deg2rad(view_deg), np.deg2rad(elevation_deg)
  to_cam = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az),
                     np.full_like(az, np.sin(el))], -1)  # [T, 3]
  right = np.stack([-np.sin(az), np.cos(az), np.zeros_like(az)], -1)
  up = np.cross(to_cam, right)  # [T, 3]
  return np.stack([right, up], 1)


def project(arrays: dict[str, np.ndarray],
            axes: np.ndarray) -> dict[str, np.ndarray]:
  """Projects scene primitives with camera axes [T, 2, 3] to 2-D."""
  proj = lambda x: np.einsum('tij,tkj->tki', axes, x)  # [T, K, 3] -> [T,K,2]
  return {
      'cone_a': proj(arrays['cone_a']),
      'cone_b': proj(arrays['cone_b']),
      'cone_ra': arrays['cone_ra'],
      'cone_rb': arrays['cone_rb'],
      'ell_c': proj(arrays['ell_c']),  # [T, E, 2]
      'ell_cov': np.einsum('tij,tejk,tlk->teil', axes, arrays['ell_cov'],
                           axes),  # [T, E, 2, 2]
  }


def _disc_spans(c, r, y):
  """Row intervals of discs c [T, N, 2], r [T, N] at rows y [T, H]."""
  dy = y[:, None, :] - c[..., 1:2]  # [T, N, H]
  h2 = np.square(r)[..., None] - np.square(dy)
  half = np.sqrt(np.maximum(h2, 0.0))
  ok = h2 >= 0
  cx = c[..., 0:1]
  return (np.where(ok, cx - half, _EMPTY_LO),
          np.where(ok, cx + half, _EMPTY_HI))  # [T, N, H] each


def _ellipse_spans(c, cov, y):
  """Row intervals of ellipses (centre c [T, E, 2], shape cov [T, E, 2, 2]).

  Points p with (p - c)^T cov^-1 (p - c) <= 1; at a row offset dy the x range
  is centred at cov_xy / cov_yy * dy with half width
  sqrt((cov_xx - cov_xy^2 / cov_yy) * (1 - dy^2 / cov_yy)).
  """
  sxx, sxy, syy = (cov[..., 0, 0, None], cov[..., 0, 1, None],
                   cov[..., 1, 1, None])  # [T, E, 1]
  dy = y[:, None, :] - c[..., 1:2]  # [T, E, H]
  h2 = (sxx - sxy * sxy / syy) * (1.0 - dy * dy / syy)
  mid = c[..., 0:1] + sxy / syy * dy
  half = np.sqrt(np.maximum(h2, 0.0))
  ok = h2 >= 0
  return np.where(ok, mid - half, _EMPTY_LO), np.where(ok, mid + half,
                                                       _EMPTY_HI)


def _hull_quads(a, b, ra, rb):
  """Quadrilateral between the outer tangents of two discs.

  Args:
    a, b: [T, K, 2] disc centres; ra, rb: [T, K] radii.

  Returns:
    [T, K, 4, 2] vertices; together with the two discs they cover the convex
    hull of the discs.
  """
  d = b - a
  length = np.maximum(np.linalg.norm(d, axis=-1), 1e-9)  # [T, K]
  d = d / length[..., None]
  n = np.stack([-d[..., 1], d[..., 0]], -1)
  # Unit normals u of the tangent lines satisfy u . d = (rb - ra) / length.
  s = np.clip((rb - ra) / length, -0.99, 0.99)[..., None]
  c = np.sqrt(1.0 - s * s)
  u_pos, u_neg = s * d + c * n, s * d - c * n
  ra, rb = ra[..., None], rb[..., None]
  return np.stack([a + ra * u_pos, b + rb * u_pos, b + rb * u_neg,
                   a + ra * u_neg], -2)


def _quad_spans(v, y):
  """Row intervals of convex quadrilaterals v [T, Q, 4, 2] at rows y [T, H]."""
  e = np.roll(v, -1, axis=-2) - v  # [T, Q, 4, 2] edge vectors
  area = np.sum(v[..., 0] * np.roll(v[..., 1], -1, -1)
                - np.roll(v[..., 0], -1, -1) * v[..., 1], -1)  # [T, Q]
  sign = np.where(area >= 0, 1.0, -1.0)[..., None]  # orient all CCW
  # Inside iff cross(e, p - v) >= 0 for every edge: slope * x + off >= 0.
  slope = (-e[..., 1] * sign)[..., None]  # [T, Q, 4, 1]
  off = sign[..., None] * (
      e[..., 0, None] * (y[:, None, None, :] - v[..., 1, None])
      + e[..., 1, None] * v[..., 0, None])  # [T, Q, 4, H]
  flat = np.abs(slope) < 1e-12
  bound = -off / np.where(flat, 1.0, slope)
  lo = np.max(np.where((slope > 0) & ~flat, bound, -np.inf), axis=-2)
  hi = np.min(np.where((slope < 0) & ~flat, bound, np.inf), axis=-2)
  blocked = np.any(flat & (off < 0), axis=-2)  # [T, Q, H]
  degenerate = (np.abs(area) < 1e-12)[..., None]
  ok = ~blocked & ~degenerate & (lo <= hi)
  return np.where(ok, lo, _EMPTY_LO), np.where(ok, hi, _EMPTY_HI)


def rasterise(prims: dict[str, np.ndarray], size: int = 64,
              supersample: int = 1, aspect: float = 1.0) -> np.ndarray:
  """Renders projected primitives to normalised binary silhouettes.

  Args:
    prims: output of `project` (2-D primitives for T frames).
    size: output height and width in pixels.
    supersample: render at this factor and downsample by majority vote.
    aspect: horizontal pixel size relative to vertical (nuisance).

  Returns:
    uint8 [T, size, size] silhouettes with values 0 or 255.
  """
  a, b = prims['cone_a'], prims['cone_b']
  ra, rb = prims['cone_ra'], prims['cone_rb']
  ec, ecov = prims['ell_c'], prims['ell_cov']
  t = a.shape[0]
  # Vertical extent per frame -> rows spanning the full frame height.
  ell_h = np.sqrt(ecov[..., 1, 1])  # [T, E]
  top = np.maximum(np.max(np.maximum(a[..., 1] + ra, b[..., 1] + rb), 1),
                   np.max(ec[..., 1] + ell_h, 1))  # [T]
  bottom = np.minimum(np.min(np.minimum(a[..., 1] - ra, b[..., 1] - rb), 1),
                      np.min(ec[..., 1] - ell_h, 1))
  rows = size * supersample
  pix = (top - bottom) / rows  # [T] world units per pixel
  y = top[:, None] - (np.arange(rows) + 0.5) * pix[:, None]  # [T, rows]

  discs = np.concatenate([a, b], 1), np.concatenate([ra, rb], 1)
  spans = [_disc_spans(*discs, y), _ellipse_spans(ec, ecov, y),
           _quad_spans(_hull_quads(a, b, ra, rb), y)]
  lo = np.concatenate([s[0] for s in spans], 1)  # [T, M, rows]
  hi = np.concatenate([s[1] for s in spans], 1)

  # Canvas twice as wide as the output, centred on the mean disc position.
  cols = 2 * rows
  xpix = pix * aspect
  x0 = np.mean(discs[0][..., 0], 1) - 0.5 * cols * xpix  # [T]
  scale = lambda v: (v - x0[:, None, None]) / xpix[:, None, None] - 0.5
  with np.errstate(invalid='ignore'):
    first = np.clip(np.ceil(scale(lo)), 0, cols)
    last = np.clip(np.floor(scale(hi)) + 1, 0, cols)
  ok = first < last  # [T, M, rows]
  # Difference array per (frame, row): +1 at span start, -1 after its end.
  base = (np.arange(t)[:, None, None] * rows
          + np.arange(rows)[None, None, :]) * (cols + 1)  # [T, 1, rows]
  base = np.broadcast_to(base, ok.shape)[ok]
  n = t * rows * (cols + 1)
  diff = (np.bincount(base + first[ok].astype(np.int64), minlength=n)
          - np.bincount(base + last[ok].astype(np.int64), minlength=n))
  canvas = np.cumsum(diff.reshape(t, rows, cols + 1), -1)[..., :cols] > 0

  if supersample > 1:  # [T, rows, cols] -> [T, size, 2 * size]
    canvas = canvas.reshape(t, size, supersample, 2 * size, supersample)
    canvas = canvas.mean((2, 4)) >= 0.5
  return _centre_columns(canvas, size)


def _centre_columns(canvas: np.ndarray, size: int) -> np.ndarray:
  """Crops [T, H, W] canvases to [T, H, size] around the column mass median.

  As in OpenGait's pretreatment, the centre is the first column where the
  cumulative column mass exceeds half the total; the frame is zero padded
  where the crop leaves the canvas.
  """
  t = canvas.shape[0]
  mass = np.cumsum(canvas.sum(1), -1)  # [T, W]
  centre = np.argmax(mass > mass[:, -1:] / 2, -1)  # [T]
  half = size // 2
  padded = np.pad(canvas, ((0, 0), (0, 0), (half, half)))
  idx = centre[:, None] + np.arange(size)[None, :]  # [T, size] in padded
  out = np.take_along_axis(padded, idx[:, None, :], axis=2)
  return out.astype(np.uint8) * 255
