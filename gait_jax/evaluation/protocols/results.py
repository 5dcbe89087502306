"""Results of a protocol: per probe set scores, probe counts, table and JSON.

A rule function (see ``gait_jax.evaluation.protocols.rules``) returns a
`ProtocolResult` holding one `ProbeSetResult` per probe set. Besides the
scores, every probe set says how many of its probes could not be matched
(`ProbeCounts`): probes whose subject has no gallery sequence, and for the
cross-view gallery the probes with no true match left after the same-view
exclusion. The table and the JSON report both state these counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class ProbeCounts:
  """How many probes of a probe set could not be matched.

  Attributes:
    probes: probes in the set.
    no_gallery: probes whose subject has no gallery sequence at all.
    no_gallery_pairs: single-view gallery: (probe, gallery view) pairs with
      the two views different, a non-empty gallery in that view and no
      gallery sequence of the probe's subject in it; None for other rules.
    no_match: cross-view gallery: probes with no true match left after the
      same-view exclusion (the `no_gallery` ones included); None for other
      rules.
    removed: True when those pairs or probes are left out of the rank-1
      (protocol option ``remove_no_gallery``); False when they count as
      misses (OpenGait's rule).
    no_match_note: how the ``no_match`` probes are treated, completing
      "<n> of <m> probes have no true match ..."; None: the cross-view
      gallery's wording.
  """
  probes: int
  no_gallery: int
  no_gallery_pairs: int | None = None
  no_match: int | None = None
  removed: bool = False
  no_match_note: str | None = None

  def to_dict(self) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(self).items()
            if v is not None}

  def note(self) -> str | None:
    """One sentence on the unmatched probes; None when there are none."""
    parts = []
    if self.no_match:
      if self.no_match_note:
        parts.append(f'{self.no_match} of {self.probes} probes have no true '
                     f'match {self.no_match_note}')
      else:
        how = ('skipped for rank-1 and mAP (remove_no_gallery)'
               if self.removed else 'misses for rank-1, skipped for mAP')
        parts.append(f'{self.no_match} of {self.probes} probes have no true '
                     'match after the same-view exclusion '
                     f'({self.no_gallery} have no gallery sequence of their '
                     f'subject): {how}')
    pairs = self.no_gallery_pairs or 0
    if self.no_gallery_pairs is not None and (self.no_gallery or pairs):
      how = ('left out (remove_no_gallery)' if self.removed
             else 'counted as misses')
      parts.append(f'{self.no_gallery} of {self.probes} probes have no '
                   'gallery sequence of their subject; '
                   f'{pairs} cross-view (probe, gallery view) pairs lack one '
                   f'and are {how}')
    return '; '.join(parts) or None


@dataclasses.dataclass
class ProbeSetResult:
  """Scores of one probe set (e.g. CASIA-B 'BG').

  Attributes:
    name: probe set name.
    per_view: [V] rank-1 (%) per probe view.
    mean: mean of `per_view`.
    counts: unmatched probes of the set.
    matrix: [V, V] rank-1 (%) per probe x gallery view (single-view gallery).
    map_per_view: [V] mAP (%) per probe view (cross-view gallery).
    map_mean: mean of `map_per_view`.
    extra: further summary scalars of the set, by summary key.
    summary_name: the summary key of `mean`; None: `name`.
  """
  name: str
  per_view: np.ndarray
  mean: float
  counts: ProbeCounts
  matrix: np.ndarray | None = None
  map_per_view: np.ndarray | None = None
  map_mean: float | None = None
  extra: dict[str, float] = dataclasses.field(default_factory=dict)
  summary_name: str | None = None

  def summary(self) -> dict[str, float]:
    """{'<name>': rank-1, '<name>/mAP': mAP, **extra} (the first key is
    `summary_name` when set)."""
    out = {self.summary_name or self.name: self.mean}
    if self.map_mean is not None:
      out[f'{self.name}/mAP'] = self.map_mean
    out.update(self.extra)
    return out

  def to_dict(self) -> dict[str, Any]:
    """JSON-serialisable form (NaN becomes None)."""
    entry = {'per_view': _json_list(self.per_view),
             'mean': _json_float(self.mean),
             'counts': self.counts.to_dict()}
    if self.matrix is not None:
      entry['matrix'] = [_json_list(row) for row in self.matrix]
    if self.map_per_view is not None:
      entry['map_per_view'] = _json_list(self.map_per_view)
      entry['map_mean'] = _json_float(self.map_mean)
    if self.extra:
      entry['extra'] = {k: _json_float(v) for k, v in self.extra.items()}
    return entry


def _json_float(v: float | None) -> float | None:
  return None if v is None or np.isnan(v) else float(v)


def _json_list(x: np.ndarray) -> list[float | None]:
  return [_json_float(v) for v in np.ravel(x)]


@dataclasses.dataclass
class ProtocolResult:
  """Result of `evaluate`: one `ProbeSetResult` per probe set.

  Attributes:
    protocol: registry name of the protocol.
    views: the V views of the per-view columns.
    probe_sets: probe set name -> its result, in table order.
    metric: distance metric ('euc' or 'cos').
    description: what the numbers are (the table's title).
    options: the protocol options in effect.
    columns: table column labels when the values of a probe set are not per
      view (e.g. rank-1, rank-5, mAP); then `views` is empty and the table
      has no mean column.
  """
  protocol: str
  views: tuple[str, ...]
  probe_sets: dict[str, ProbeSetResult]
  metric: str = 'euc'
  description: str = ''
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  columns: tuple[str, ...] | None = None

  def summary(self) -> dict[str, float]:
    """Flat {'NM': rank-1, 'NM/mAP': mAP, ...} dictionary."""
    out = {}
    for r in self.probe_sets.values():
      out.update(r.summary())
    return out

  def to_dict(self) -> dict[str, Any]:
    """JSON-serialisable form (NaN becomes None)."""
    return {'protocol': self.protocol, 'metric': self.metric,
            'description': self.description, 'options': dict(self.options),
            'views': list(self.views),
            **({'columns': list(self.columns)} if self.columns else {}),
            'probe_sets': {name: r.to_dict()
                           for name, r in self.probe_sets.items()}}

  def format_table(self) -> str:
    """Rows = probe sets (and their mAP), columns = views + mean (or
    `columns`); then the extra scores and one line on the unmatched probes
    of each set."""
    mean = [] if self.columns else ['mean']
    header = ['probe'] + list(self.columns or self.views) + mean
    rows = []
    for name, r in self.probe_sets.items():
      rows.append([name] + [f'{v:.2f}' for v in r.per_view]
                  + ([] if self.columns else [f'{r.mean:.2f}']))
      if r.map_per_view is not None:
        rows.append([f'{name} mAP'] + [f'{v:.2f}' for v in r.map_per_view]
                    + [f'{r.map_mean:.2f}'])
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]
    fmt = lambda row: '  '.join(c.rjust(w) for c, w in zip(row, widths))
    lines = [f'{self.protocol}: {self.description}', fmt(header)]
    lines += [fmt(row) for row in rows]
    if not self.columns:
      lines += [f'{name}: ' + ', '.join(f'{k} {v:.2f}'
                                        for k, v in r.extra.items())
                for name, r in self.probe_sets.items() if r.extra]
    notes = [(name, r.counts.note()) for name, r in self.probe_sets.items()]
    notes = [f'{name}: {note}.' for name, note in notes if note]
    total = sum(r.counts.probes for r in self.probe_sets.values())
    lines += notes or [f'All {total} probes have a true match in every '
                       'gallery they are ranked against.']
    return '\n'.join(lines)
