"""Retrieval metrics of gait evaluation: part distances, rank-1, mAP.

Distances are means over parts of per-part distances (OpenGait's
``cuda_dist``), computed in blocks so that OUMVLP-size sets fit in memory.
Single-view-gallery rank-1 is computed per (probe view, gallery view) cell and
rounded to two decimals per cell; the cross-view gallery form gives per-probe
hits and average precision (NaN for a probe with no true match left, so that
each protocol decides how such probes count). Protocols built from these live
in ``gait_jax.evaluation.protocols``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, Union

import numpy as np

# A distance matrix, or a function giving the block for index arrays.
DistanceLike = Union[np.ndarray, Callable[[np.ndarray, np.ndarray],
                                          np.ndarray]]

_BLOCK_ELEMENTS = 1 << 24  # distance entries per block (64 MiB of float32)

# Valid `metric` and `backend` names of `part_distance`.
METRICS = ('euc', 'cos')
DISTANCE_BACKENDS = ('numpy', 'jax')


def check_metric(metric: str) -> str:
  """Returns ``metric``; a ValueError lists the valid names."""
  if metric not in METRICS:
    raise ValueError(f'Unknown distance metric {metric!r}; valid: '
                     f'{list(METRICS)}')
  return metric


def check_backend(backend: str) -> str:
  """Returns ``backend``; a ValueError lists the valid names."""
  if backend not in DISTANCE_BACKENDS:
    raise ValueError(f'Unknown distance backend {backend!r}; valid: '
                     f'{list(DISTANCE_BACKENDS)}')
  return backend


# ------------------------------------------------------------------ distances


def _normalize(x: np.ndarray) -> np.ndarray:
  norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
  return x / np.maximum(norm, 1e-12)


def _numpy_block(x: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
  """Distances of x [m, p, c] to y [g, p, c] -> [m, g], part by part."""
  acc = np.zeros((x.shape[0], y.shape[0]), np.float32)
  for part in range(x.shape[1]):
    xp, yp = x[:, part], y[:, part]  # [m, c], [g, c]
    dot = xp @ yp.T  # [m, g]
    if metric == 'euc':
      sq = (np.sum(xp * xp, -1)[:, None] + np.sum(yp * yp, -1)[None, :]
            - 2.0 * dot)
      acc += np.sqrt(np.maximum(sq, 0.0))
    else:
      acc += dot
  acc /= x.shape[1]
  return acc if metric == 'euc' else 1.0 - acc


@functools.lru_cache(maxsize=None)
def _jax_block_fn(metric: str):
  """Returns a jitted block distance function (built lazily)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def block(x, y):
    xt, yt = jnp.swapaxes(x, 0, 1), jnp.swapaxes(y, 0, 1)  # [p, m|g, c]

    def body(acc, xy):
      xp, yp = xy  # [m, c], [g, c]
      dot = jnp.matmul(xp, yp.T, precision=jax.lax.Precision.HIGHEST)
      if metric == 'euc':
        sq = (jnp.sum(xp * xp, -1)[:, None] + jnp.sum(yp * yp, -1)[None, :]
              - 2.0 * dot)
        return acc + jnp.sqrt(jnp.maximum(sq, 0.0)), None
      return acc + dot, None

    init = jnp.zeros((x.shape[0], y.shape[0]), jnp.float32)
    acc, _ = jax.lax.scan(body, init, (xt, yt))  # [m, g]
    acc = acc / x.shape[1]
    return acc if metric == 'euc' else 1.0 - acc

  return jax.jit(block)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  if x.shape[0] == rows:
    return x
  pad = np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)
  return np.concatenate([x, pad], 0)


def part_distance(probe: np.ndarray, gallery: np.ndarray, metric: str = 'euc',
                  *, backend: str = 'numpy',
                  block_elements: int = _BLOCK_ELEMENTS) -> np.ndarray:
  """Mean over parts of per-part distances between two embedding sets.

  For `euc`, each part contributes sqrt(relu(|x|^2 + |y|^2 - 2 x.y)); for
  `cos`, the distance is 1 - mean over parts of the cosine similarity (each
  part L2-normalised over channels).

  Args:
    probe: [m, p, c] embeddings.
    gallery: [g, p, c] embeddings.
    metric: 'euc' or 'cos'.
    backend: 'numpy' or 'jax' (jitted, float32 at highest matmul precision;
      blocks are padded to fixed sizes so only a few shapes compile).
    block_elements: number of distance entries computed per block.

  Returns:
    float32 [m, g] distance matrix.
  """
  check_metric(metric)
  check_backend(backend)
  probe = np.asarray(probe, np.float32)
  gallery = np.asarray(gallery, np.float32)
  if probe.ndim != 3 or gallery.ndim != 3 or probe.shape[1:] != gallery.shape[
      1:]:
    raise ValueError('probe and gallery must be [n, parts, channels] with '
                     f'equal parts/channels, got {probe.shape} and '
                     f'{gallery.shape}')
  m, g = probe.shape[0], gallery.shape[0]
  out = np.zeros((m, g), np.float32)
  if m == 0 or g == 0:
    return out
  if metric == 'cos':
    probe, gallery = _normalize(probe), _normalize(gallery)
  if backend == 'numpy':
    rows = max(1, block_elements // g)
    for start in range(0, m, rows):
      out[start:start + rows] = _numpy_block(probe[start:start + rows],
                                             gallery, metric)
    return out
  fn = _jax_block_fn(metric)
  # Pad to few distinct shapes: gallery rows to a multiple of 256, probe
  # rows to a power of two.
  g_pad = -(-g // 256) * 256
  rows = 8
  while rows < m and rows * 2 * g_pad <= block_elements:
    rows *= 2
  gallery_p = _pad_rows(gallery, g_pad)
  for start in range(0, m, rows):
    chunk = probe[start:start + rows]  # [<=rows, p, c]
    block = np.asarray(fn(_pad_rows(chunk, rows), gallery_p))
    out[start:start + chunk.shape[0]] = block[:chunk.shape[0], :g]
  return out


def _block_getter(dist: DistanceLike):
  if callable(dist):
    return dist
  dist = np.asarray(dist)
  return lambda pi, gi: dist[np.ix_(pi, gi)]


# ---------------------------------------------------- single-view gallery


def single_view_gallery_rank1(
    dist: DistanceLike, probe_labels: Sequence[Any],
    probe_views: Sequence[Any], gallery_labels: Sequence[Any],
    gallery_views: Sequence[Any], views: Sequence[Any], *,
    remove_no_gallery: bool = False) -> np.ndarray:
  """Rank-1 accuracy for every (probe view, gallery view) pair.

  Args:
    dist: [m, g] probe-to-gallery distances, or a function mapping (probe
      indices, gallery indices) to that block of the matrix.
    probe_labels: [m] subject of each probe.
    probe_views: [m] view of each probe.
    gallery_labels: [g] subject of each gallery item.
    gallery_views: [g] view of each gallery item.
    views: the V views, in table order.
    remove_no_gallery: drop from a cell the probes whose subject has no
      gallery item in that gallery view (otherwise they count as misses).

  Returns:
    float64 [V, V] accuracies in % (probe view x gallery view), each rounded
    to 2 decimals; NaN where a cell has no probe or no gallery item.
  """
  get = _block_getter(dist)
  pl, pv = np.asarray(probe_labels), np.asarray(probe_views)
  gl, gv = np.asarray(gallery_labels), np.asarray(gallery_views)
  acc = np.full((len(views), len(views)), np.nan)
  for i, v1 in enumerate(views):
    p_idx = np.flatnonzero(pv == v1)
    for j, v2 in enumerate(views):
      g_idx = np.flatnonzero(gv == v2)
      if p_idx.size == 0 or g_idx.size == 0:
        continue
      keep = p_idx
      if remove_no_gallery:
        keep = p_idx[np.isin(pl[p_idx], gl[g_idx])]
        if keep.size == 0:
          continue
      nearest = np.argmin(get(keep, g_idx), axis=1)  # [m_cell]
      hits = np.sum(pl[keep] == gl[g_idx][nearest])
      acc[i, j] = np.round(hits / keep.size * 100.0, 2)
  return acc


def exclude_identical_view(acc: np.ndarray) -> np.ndarray:
  """Per probe view, the mean accuracy over the other gallery views.

  Args:
    acc: [V, V] accuracy matrix (probe view x gallery view).

  Returns:
    [V]: (row sum - diagonal) / (V - 1).
  """
  acc = np.asarray(acc, np.float64)
  return (acc.sum(1) - np.diag(acc)) / (acc.shape[1] - 1)


# ----------------------------------------------------- cross-view gallery


def cross_view_rank1_ap(
    dist: DistanceLike, probe_labels: Sequence[Any],
    probe_views: Sequence[Any], gallery_labels: Sequence[Any],
    gallery_views: Sequence[Any], *,
    block_elements: int = _BLOCK_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
  """Per-probe rank-1 hit and average precision, cross-view gallery rule.

  For each probe, gallery items with the same subject and the same view are
  removed before ranking (ties keep gallery order).

  Args:
    dist: [m, g] distances, or a function of (probe idx, gallery idx).
    probe_labels: [m] subjects.
    probe_views: [m] views.
    gallery_labels: [g] subjects.
    gallery_views: [g] views.
    block_elements: distance entries ranked at once.

  Returns:
    (hit [m] in {0, 1}, ap [m] in [0, 1]), both float64 and NaN for probes
    with no true match left in the gallery.
  """
  get = _block_getter(dist)
  pl, pv = np.asarray(probe_labels), np.asarray(probe_views)
  gl, gv = np.asarray(gallery_labels), np.asarray(gallery_views)
  m, g = pl.shape[0], gl.shape[0]
  hit, ap = np.full(m, np.nan), np.full(m, np.nan)
  if g == 0:
    return hit, ap
  g_idx = np.arange(g)
  rows = max(1, block_elements // g)
  for start in range(0, m, rows):
    p_idx = np.arange(start, min(m, start + rows))
    order = np.argsort(get(p_idx, g_idx), axis=1, kind='stable')  # [b, g]
    same_id = gl[order] == pl[p_idx, None]  # [b, g]
    keep = ~(same_id & (gv[order] == pv[p_idx, None]))
    rel = same_id & keep
    num_rel = rel.sum(1)  # [b]
    rank = np.cumsum(keep, 1)  # position among kept items, 1-based
    precision = np.cumsum(rel, 1) / np.maximum(rank, 1)
    ap_b = np.sum(np.where(rel, precision, 0.0), 1) / np.maximum(num_rel, 1)
    first = np.argmax(keep, 1)  # [b] first kept item
    hit_b = rel[np.arange(len(p_idx)), first].astype(np.float64)
    valid = num_rel > 0
    hit[p_idx] = np.where(valid, hit_b, np.nan)
    ap[p_idx] = np.where(valid, ap_b, np.nan)
  return hit, ap


def mean_per_view(values: np.ndarray, probe_views: Sequence[Any],
                  views: Sequence[Any]) -> np.ndarray:
  """Mean of non-NaN per-probe values per view, in %, rounded to 2 decimals.

  Args:
    values: [m] per-probe values in [0, 1] (NaN = skipped probe).
    probe_views: [m] views.
    views: the V views.

  Returns:
    [V] percentages; NaN for a view without valid probes.
  """
  pv = np.asarray(probe_views)
  out = np.full(len(views), np.nan)
  for i, v in enumerate(views):
    vals = values[(pv == v) & ~np.isnan(values)]
    if vals.size:
      out[i] = np.round(vals.mean() * 100.0, 2)
  return out
