"""Gait recognition evaluation protocols (CASIA-B, OUMVLP) and distances.

Two families of protocols are implemented:

* **Single-view gallery** (the standard rank-1 tables): for every probe view
  v1 and gallery view v2 the probes of view v1 are matched against the gallery
  sequences of view v2 only; the rank-1 accuracy of each cell is rounded to two
  decimals, and the per-view number is the row mean without the identical view.
* **Cross-view gallery** (rank-1 and mAP): the gallery holds every view; for
  each probe the gallery items of the same subject *and* the same view are
  removed; probes without any remaining true match are skipped.

The distances and per-probe metrics are in ``gait_jax.retrieval`` (re-exported
here); this module holds the probe/gallery rules, the registry and results.
"""

import dataclasses
from typing import Any, Sequence

import numpy as np

from gait_jax.retrieval import cross_view_rank1_ap
from gait_jax.retrieval import exclude_identical_view
from gait_jax.retrieval import mean_per_view
from gait_jax.retrieval import part_distance
from gait_jax.retrieval import single_view_gallery_rank1


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
