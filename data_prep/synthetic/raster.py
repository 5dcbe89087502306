"""Projection of 3-D body primitives and binary silhouette rasterisation.

Orthographic projection keeps the shape class of every primitive: a tapered
capsule (convex hull of two spheres) becomes the convex hull of two discs, an
ellipsoid becomes an ellipse. Each of these is convex, so on every pixel row
it covers one interval of x that has a closed form. The rasteriser computes
these intervals for all frames, primitives and rows at once, merges the
intervals of each row and writes their pixels with one scatter: no per-pixel
distance tests, and a few milliseconds per 30-frame sequence.

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


def _linear_spans(kx, c, lo, hi):
  """x ranges where lo <= kx * x + c <= hi (kx, c, lo, hi broadcast)."""
  kx = np.where(np.abs(kx) < 1e-9, 1e-9, kx)  # ~0: all or nothing
  q1, q2 = (lo - c) / kx, (hi - c) / kx
  return np.minimum(q1, q2), np.maximum(q1, q2)


def _cone_spans(a, b, ra, rb, y):
  """Row intervals of tapered capsules (convex hulls of two discs).

  The hull is the two discs plus the trapezoid between their outer tangent
  lines, whose ends are chords perpendicular to the axis. Each piece gives an
  interval per row; the hull is convex, so their union is one interval.

  Args:
    a, b: [T, K, 2] disc centres; ra, rb: [T, K] radii; y: [T, H] rows.

  Returns:
    lo, hi: [T, K, H] (lo = inf, hi = -inf where a row misses the cone).
  """
  d = b - a
  length = np.maximum(np.sqrt(np.sum(d * d, -1)), 1e-6)  # [T, K]
  d = d / length[..., None]
  n = np.stack([-d[..., 1], d[..., 0]], -1)
  # Tangent line: (p - a) . u = ra and (p - b) . u = rb for a unit normal u,
  # so u . d = (ra - rb) / length.
  sin = np.clip((ra - rb) / length, -0.99, 0.99)[..., None]  # [T, K, 1]
  cos = np.sqrt(1.0 - sin * sin)
  dy = (y[:, None, :] - a[..., 1:2])  # [T, K, H] row offset from a
  big = np.float32(1e30)
  los, his = [], []
  # Slab between the chords: sin * ra <= (p - a) . d <= length + sin * rb.
  for k, lo, hi in ((d, sin[..., 0] * ra, length + sin[..., 0] * rb),
                    (sin * d + cos * n, -big, ra),  # below each tangent
                    (sin * d - cos * n, -big, ra)):
    c = k[..., 1:2] * dy - k[..., 0:1] * a[..., 0:1]
    lo_k, hi_k = _linear_spans(k[..., 0:1], c, np.expand_dims(lo, -1),
                               np.expand_dims(hi, -1))
    los.append(lo_k)
    his.append(hi_k)
  t_lo, t_hi = np.maximum.reduce(los), np.minimum.reduce(his)
  # No trapezoid when one disc contains the other.
  inside = (t_lo <= t_hi) & (np.abs(ra - rb) < length)[..., None]
  a_lo, a_hi = _disc_spans(a, ra, y)
  b_lo, b_hi = _disc_spans(b, rb, y)
  lo = np.minimum(np.minimum(a_lo, b_lo), np.where(inside, t_lo, np.inf))
  hi = np.maximum(np.maximum(a_hi, b_hi), np.where(inside, t_hi, -np.inf))
  return lo, hi


def _paint_spans(first: np.ndarray, last: np.ndarray,
                 width: int) -> np.ndarray:
  """Paints the union of pixel spans [first, last) on every row.

  Spans of a row are sorted by start and merged (a running maximum of their
  ends), so the merged spans are disjoint and their pixels can be written
  with one scatter.

  Args:
    first, last: int [T, M, R] span bounds in [0, width]; first >= last
      means empty.
    width: row width in pixels.

  Returns:
    bool [T, R, width].
  """
  t, m, r = first.shape
  f = np.moveaxis(first, 1, -1).reshape(-1, m)  # [T * R, M]
  e = np.moveaxis(last, 1, -1).reshape(-1, m)
  empty = f >= e
  f = np.where(empty, width + 1, f)  # sorts last, never starts a span
  e = np.where(empty, 0, e)
  order = np.argsort(f, axis=1, kind='stable')
  f = np.take_along_axis(f, order, 1)
  e = np.take_along_axis(e, order, 1)
  reach = np.maximum.accumulate(e, axis=1)  # [T * R, M]
  edge = np.full((f.shape[0], 1), -1, np.int32)
  starts = f > np.concatenate([edge, reach[:, :-1]], 1)
  ends = np.concatenate([f[:, 1:], edge + width + 2], 1) > reach
  valid = f <= width
  row_s, col_s = np.nonzero(starts & valid)
  row_e, col_e = np.nonzero(ends & valid)  # same rows, same order
  begin = row_s * width + f[row_s, col_s]  # flat index of each span start
  length = reach[row_e, col_e] - f[row_s, col_s]
  # Flat indices of all covered pixels: begin + 0 .. length - 1 per span.
  offsets = np.cumsum(length) - length
  idx = np.arange(int(length.sum())) + np.repeat(begin - offsets, length)
  canvas = np.zeros(t * r * width, bool)
  canvas[idx] = True
  return canvas.reshape(t, r, width)


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
  # float32 halves the memory traffic; 1e-7 relative error is far below a
  # pixel.
  a, b, ra, rb, ec, ecov = (
      prims[k].astype(np.float32)
      for k in ('cone_a', 'cone_b', 'cone_ra', 'cone_rb', 'ell_c', 'ell_cov'))
  t = a.shape[0]
  # Vertical extent per frame -> rows spanning the full frame height.
  ell_h = np.sqrt(ecov[..., 1, 1])  # [T, E]
  top = np.maximum(np.max(np.maximum(a[..., 1] + ra, b[..., 1] + rb), 1),
                   np.max(ec[..., 1] + ell_h, 1))  # [T]
  bottom = np.minimum(np.min(np.minimum(a[..., 1] - ra, b[..., 1] - rb), 1),
                      np.min(ec[..., 1] - ell_h, 1))
  rows = size * supersample
  pix = (top - bottom) / rows  # [T] world units per pixel
  y = top[:, None] - (np.arange(rows, dtype=np.float32) + 0.5) * pix[:, None]

  spans = [_cone_spans(a, b, ra, rb, y), _ellipse_spans(ec, ecov, y)]
  lo = np.concatenate([s[0] for s in spans], 1)  # [T, K + E, rows]
  hi = np.concatenate([s[1] for s in spans], 1)

  # Canvas 1.5x as wide as tall (wider than any body), centred on the body.
  cols = rows + rows // 2
  xpix = pix * aspect  # [T]
  left = np.min(np.where(np.isfinite(lo), lo, np.inf), (1, 2))
  right = np.max(np.where(np.isfinite(hi), hi, -np.inf), (1, 2))
  x0 = 0.5 * (left + right) - 0.5 * cols * xpix  # [T]
  inv = (1.0 / xpix)[:, None, None]
  with np.errstate(invalid='ignore'):
    first = np.clip(np.ceil((lo - x0[:, None, None]) * inv - 0.5), 0, cols)
    last = np.clip(np.floor((hi - x0[:, None, None]) * inv + 0.5), 0, cols)
  canvas = _paint_spans(first.astype(np.int32), last.astype(np.int32), cols)

  if supersample > 1:  # Majority vote: [T, rows, cols] -> [T, size, cols/ss]
    votes = canvas.view(np.uint8).reshape(
        t, size, supersample, cols // supersample, supersample)
    votes = votes.sum((2, 4), dtype=np.uint8)
    canvas = votes * 2 >= supersample * supersample
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


def extents(prims: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
  """Exact bounds of projected primitives per frame.

  Args:
    prims: output of `project` (or `wild.project_perspective`).

  Returns:
    top, bottom, left, right: [T] each (cones are hulls of discs, ellipses
    extend sqrt(cov) from their centres).
  """
  a, b, ra, rb, ec, ecov = (
      prims[k].astype(np.float32)
      for k in ('cone_a', 'cone_b', 'cone_ra', 'cone_rb', 'ell_c', 'ell_cov'))
  ell = np.sqrt(np.stack([ecov[..., 0, 0], ecov[..., 1, 1]], -1))  # [T,E,2]
  hi = np.maximum(np.max(np.maximum(a + ra[..., None], b + rb[..., None]), 1),
                  np.max(ec + ell, 1))  # [T, 2]
  lo = np.minimum(np.min(np.minimum(a - ra[..., None], b - rb[..., None]), 1),
                  np.min(ec - ell, 1))
  return hi[:, 1], lo[:, 1], lo[:, 0], hi[:, 0]


def rasterise_window(prims: dict[str, np.ndarray], top: np.ndarray,
                     left: np.ndarray, pix: float, rows: int,
                     cols: int) -> np.ndarray:
  """Renders projected primitives into fixed camera windows (no normalising).

  Unlike `rasterise`, the pixel size is the same in every frame and the
  window is placed by the caller, so the silhouette keeps its size in pixels
  (the wild renderer adds its nuisances in this camera space).

  Args:
    prims: output of `project` for T frames.
    top: [T] world y of the window's top edge.
    left: [T] world x of the window's left edge.
    pix: world units per pixel (square pixels).
    rows: window height in pixels.
    cols: window width in pixels.

  Returns:
    bool [T, rows, cols] silhouettes.
  """
  a, b, ra, rb, ec, ecov = (
      prims[k].astype(np.float32)
      for k in ('cone_a', 'cone_b', 'cone_ra', 'cone_rb', 'ell_c', 'ell_cov'))
  top = np.asarray(top, np.float32)
  left = np.asarray(left, np.float32)[:, None, None]
  y = top[:, None] - (np.arange(rows, dtype=np.float32) + 0.5) * np.float32(
      pix)  # [T, rows]
  with np.errstate(over='ignore'):  # near-horizontal tangents: +-inf
    spans = [_cone_spans(a, b, ra, rb, y), _ellipse_spans(ec, ecov, y)]
  lo = np.concatenate([s[0] for s in spans], 1)  # [T, K + E, rows]
  hi = np.concatenate([s[1] for s in spans], 1)
  inv = np.float32(1.0 / pix)
  with np.errstate(invalid='ignore'):
    first = np.clip(np.ceil((lo - left) * inv - 0.5), 0, cols)
    last = np.clip(np.floor((hi - left) * inv + 0.5), 0, cols)
  return _paint_spans(first.astype(np.int32), last.astype(np.int32), cols)
