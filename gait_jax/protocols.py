"""Gait recognition evaluation protocols (CASIA-B, OUMVLP) and distances.

Two families of protocols are implemented:

* **Single-view gallery** (the standard rank-1 tables): for every probe view
  v1 and gallery view v2 the probes of view v1 are matched against the gallery
  sequences of view v2 only; the rank-1 accuracy of each cell is rounded to two
  decimals, and the per-view number is the row mean without the identical view.
* **Cross-view gallery** (rank-1 and mAP): the gallery holds every view; for
  each probe the gallery items of the same subject *and* the same view are
  removed; probes without any remaining true match are skipped.

Distances are means over parts of per-part distances, computed in blocks so
that OUMVLP-size sets fit in memory. Everything else is NumPy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence, Union

import numpy as np

# A distance matrix, or a function giving the block for index arrays.
DistanceLike = Union[np.ndarray, Callable[[np.ndarray, np.ndarray],
                                          np.ndarray]]

_BLOCK_ELEMENTS = 1 << 24  # distance entries per block (64 MiB of float32)


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
  if metric not in ('euc', 'cos'):
    raise ValueError(f"metric must be 'euc' or 'cos', got {metric!r}")
  if backend not in ('numpy', 'jax'):
    raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")
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


# ---------------------------------------------------------------- results


@dataclasses.dataclass
class ProbeSetResult:
  """Scores of one probe set (e.g. CASIA-B 'BG').

  Attributes:
    name: probe set name.
    per_view: [V] rank-1 (%) per probe view.
    mean: mean of `per_view`.
    matrix: [V, V] rank-1 (%) per probe x gallery view (single-view gallery).
    map_per_view: [V] mAP (%) per probe view (cross-view gallery).
    map_mean: mean of `map_per_view`.
  """
  name: str
  per_view: np.ndarray
  mean: float
  matrix: np.ndarray | None = None
  map_per_view: np.ndarray | None = None
  map_mean: float | None = None


def _json_list(x: np.ndarray) -> list[Any]:
  return [None if np.isnan(v) else float(v) for v in np.ravel(x)]


@dataclasses.dataclass
class ProtocolResult:
  """Result of `evaluate`: one `ProbeSetResult` per probe set."""
  protocol: str
  views: tuple[str, ...]
  probe_sets: dict[str, ProbeSetResult]
  metric: str = 'euc'

  def summary(self) -> dict[str, float]:
    """Flat {'NM': rank-1, 'NM/mAP': mAP, ...} dictionary."""
    out = {}
    for name, r in self.probe_sets.items():
      out[name] = r.mean
      if r.map_mean is not None:
        out[f'{name}/mAP'] = r.map_mean
    return out

  def to_dict(self) -> dict[str, Any]:
    """JSON-serialisable form (NaN becomes None)."""
    sets = {}
    for name, r in self.probe_sets.items():
      entry = {'per_view': _json_list(r.per_view),
               'mean': _json_list(np.array([r.mean]))[0]}
      if r.matrix is not None:
        entry['matrix'] = [_json_list(row) for row in r.matrix]
      if r.map_per_view is not None:
        entry['map_per_view'] = _json_list(r.map_per_view)
        entry['map_mean'] = _json_list(np.array([r.map_mean]))[0]
      sets[name] = entry
    return {'protocol': self.protocol, 'metric': self.metric,
            'views': list(self.views), 'probe_sets': sets}

  def format_table(self) -> str:
    """Rows = probe sets (and their mAP), columns = views + mean."""
    header = ['probe'] + list(self.views) + ['mean']
    rows = []
    for name, r in self.probe_sets.items():
      rows.append([name] + [f'{v:.2f}' for v in r.per_view]
                  + [f'{r.mean:.2f}'])
      if r.map_per_view is not None:
        rows.append([f'{name} mAP'] + [f'{v:.2f}' for v in r.map_per_view]
                    + [f'{r.map_mean:.2f}'])
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]
    fmt = lambda row: '  '.join(c.rjust(w) for c, w in zip(row, widths))
    kind = ('rank-1 (%), identical view excluded'
            if any(r.matrix is not None for r in self.probe_sets.values())
            else 'rank-1 / mAP (%), cross-view gallery')
    lines = [f'{self.protocol}: {kind}', fmt(header)]
    lines += [fmt(row) for row in rows]
    return '\n'.join(lines)


# --------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Probe/gallery rule of one benchmark.

  Attributes:
    name: registry name.
    kind: 'single_view' or 'cross_view'.
    probe_sets: probe set name -> sequence types in that set.
    gallery_types: sequence types forming the gallery.
    options: allowed keyword options and their defaults.
  """
  name: str
  kind: str
  probe_sets: dict[str, tuple[str, ...]]
  gallery_types: tuple[str, ...]
  options: dict[str, Any] = dataclasses.field(default_factory=dict)


_CASIA_PROBES = {'NM': ('nm-05', 'nm-06'), 'BG': ('bg-01', 'bg-02'),
                 'CL': ('cl-01', 'cl-02')}
PROTOCOLS: dict[str, Protocol] = {
    'casia_b': Protocol('casia_b', 'single_view', _CASIA_PROBES,
                        ('nm-01', 'nm-02', 'nm-03', 'nm-04')),
    'oumvlp': Protocol('oumvlp', 'single_view', {'NM': ('00',)}, ('01',),
                       {'remove_no_gallery': False}),
    'casia_b_cross_view': Protocol(
        'casia_b_cross_view', 'cross_view',
        {'NM': ('nm-01',), 'BG': ('bg-01',), 'CL': ('cl-01',)},
        ('nm-02', 'bg-02', 'cl-02')),
    'oumvlp_cross_view': Protocol('oumvlp_cross_view', 'cross_view',
                                  {'NM': ('00',)}, ('01',)),
}


def get_protocol(name: str) -> Protocol:
  """The protocol called `name`; a ValueError lists the valid names."""
  if name not in PROTOCOLS:
    raise ValueError(f'Unknown protocol {name!r}; valid names: '
                     f'{sorted(PROTOCOLS)}')
  return PROTOCOLS[name]


def _as_str(values: Sequence[Any]) -> np.ndarray:
  """Converts labels that may be bytes (TFDS Text) to a str array."""
  return np.asarray([v.decode() if isinstance(v, bytes) else str(v)
                     for v in values])


def evaluate(protocol_name: str, embeddings: np.ndarray,
             subjects: Sequence[Any], types: Sequence[Any],
             views: Sequence[Any], *, metric: str = 'euc',
             backend: str = 'numpy', **options: Any) -> ProtocolResult:
  """Evaluates embeddings of a test set under a named protocol.

  Args:
    protocol_name: one of `PROTOCOLS`.
    embeddings: [N, p, c] embeddings of every test sequence.
    subjects: [N] subject ids (str or bytes).
    types: [N] sequence types ('nm-01', '00', ...).
    views: [N] views ('090', ...).
    metric: 'euc' or 'cos'.
    backend: distance backend, 'numpy' or 'jax' (see `part_distance`).
    **options: protocol options (`remove_no_gallery` for 'oumvlp').

  Returns:
    A `ProtocolResult`; views are the sorted unique views of the test set.
  """
  proto = get_protocol(protocol_name)
  unknown = set(options) - set(proto.options)
  if unknown:
    raise ValueError(f'Unknown options {sorted(unknown)} for protocol '
                     f'{proto.name!r}; valid: {sorted(proto.options)}')
  opts = {**proto.options, **options}
  emb = np.asarray(embeddings, np.float32)
  subj, typ, view = _as_str(subjects), _as_str(types), _as_str(views)
  if not emb.shape[0] == subj.size == typ.size == view.size:
    raise ValueError('embeddings, subjects, types and views must have the '
                     f'same length: {emb.shape[0]}, {subj.size}, '
                     f'{typ.size}, {view.size}')
  view_list = sorted(set(view.tolist()))
  gal = np.flatnonzero(np.isin(typ, proto.gallery_types))
  results = {}
  for set_name, probe_types in proto.probe_sets.items():
    prb = np.flatnonzero(np.isin(typ, probe_types))

    def block(pi, gi, prb=prb):
      return part_distance(emb[prb[pi]], emb[gal[gi]], metric,
                           backend=backend)

    if proto.kind == 'single_view':
      acc = single_view_gallery_rank1(
          block, subj[prb], view[prb], subj[gal], view[gal], view_list,
          remove_no_gallery=opts.get('remove_no_gallery', False))
      per_view = exclude_identical_view(acc)
      results[set_name] = ProbeSetResult(
          set_name, per_view, float(np.mean(per_view)), matrix=acc)
    else:
      hit, ap = cross_view_rank1_ap(block, subj[prb], view[prb], subj[gal],
                                    view[gal])
      r1 = mean_per_view(hit, view[prb], view_list)
      mp = mean_per_view(ap, view[prb], view_list)
      results[set_name] = ProbeSetResult(
          set_name, r1, float(np.mean(r1)), map_per_view=mp,
          map_mean=float(np.mean(mp)))
  return ProtocolResult(proto.name, tuple(view_list), results, metric)
