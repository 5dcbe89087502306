"""Corruption evaluation: a checkpoint's scores under silhouette corruptions.

RobustGait's protocol at the silhouette level (``gait_jax.data.corruptions``):
the test sequences of one side (probes, gallery or both, by the protocol's
`Protocol.sequence_roles`) are corrupted at evaluation time, deterministically
per sequence key ``'<subject>-<type>-<view>'``, corruption and seed; the
other side keeps its clean embeddings, which are computed once. Every cell
(corruption × severity) re-embeds only the corrupted side and scores the
mixed embeddings with the run's protocol; the drop is clean minus corrupted,
in points of each summary metric.

  table = robustness.evaluate(evaluator, variables, side='probe')
  robustness.write(table, out_dir)   # robustness.json, .md, _heatmap.png
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np

from gait_jax.data import corruptions
from gait_jax.data.source import GaitSource
from gait_jax.evaluation import plots
from gait_jax.evaluation import protocols

SIDES = ('probe', 'gallery', 'both')


class CorruptedSource:
  """Read access to some sequences of a test split, corrupted on the fly.

  It offers what the evaluation pipeline reads of a `GaitSource`
  (``lengths``, ``frames``, ``frames_many``, the labels), with every
  sequence's frames passed through ``corruptions.corrupt`` under its key.

  Args:
    source: the (clean) split or a subset of it.
    name: a corruption of ``corruptions.CORRUPTIONS``.
    severity: 1..5.
    seed: the corruptions' extra seed.
  """

  def __init__(self, source: GaitSource, name: str, severity: int,
               seed: int = 0):
    self._source = source
    self.name, self.severity, self.seed = name, int(severity), int(seed)
    self.dataset_dir, self.split = source.dataset_dir, source.split
    self.subjects, self.types, self.views = (source.subjects, source.types,
                                             source.views)
    self.lengths = np.array([corruptions.corrupted_length(name, n, severity)
                             for n in source.lengths], np.int64)

  def __len__(self) -> int:
    return len(self.lengths)

  def key(self, i: int) -> str:
    """The sequence key of position ``i``."""
    return f'{self.subjects[i]}-{self.types[i]}-{self.views[i]}'

  def _corrupt(self, i: int, frames: np.ndarray) -> np.ndarray:
    return corruptions.corrupt(frames, self.name, self.severity, self.key(i),
                               self.seed)

  def frames(self, i: int) -> np.ndarray:
    """uint8 [T', H, W] corrupted frames of position ``i``."""
    return self._corrupt(i, self._source.frames(i))

  def frames_many(self, indices: Sequence[int]) -> list[np.ndarray]:
    """Corrupted frames of several positions (one batched read)."""
    return [self._corrupt(int(i), f)
            for i, f in zip(indices, self._source.frames_many(indices))]


@dataclasses.dataclass
class RobustnessTable:
  """Scores of one checkpoint under every corruption and severity.

  Attributes:
    protocol: the protocol's name.
    side: 'probe', 'gallery' or 'both'.
    metrics: the summary keys, in the protocol's order.
    clean: metric -> clean score.
    cells: (corruption, severity) -> metric -> score.
    corrupted: how many test sequences each cell corrupts.
    seed: the corruptions' seed.
  """
  protocol: str
  side: str
  metrics: tuple[str, ...]
  clean: dict[str, float]
  cells: dict[tuple[str, int], dict[str, float]]
  corrupted: int
  seed: int

  @property
  def corruptions(self) -> list[str]:
    return list(dict.fromkeys(c for c, _ in self.cells))

  @property
  def severities(self) -> list[int]:
    return sorted({s for _, s in self.cells})

  def drop(self, corruption: str, severity: int, metric: str) -> float:
    """Clean minus corrupted score, in points."""
    return self.clean[metric] - self.cells[(corruption, severity)][metric]

  def to_dict(self) -> dict[str, Any]:
    return dict(
        protocol=self.protocol, side=self.side, metrics=list(self.metrics),
        seed=self.seed, corrupted_sequences=self.corrupted, clean=self.clean,
        cells=[dict(corruption=c, severity=s, scores=v,
                    drop={m: self.drop(c, s, m) for m in self.metrics})
               for (c, s), v in self.cells.items()])

  def format_table(self, metric: str | None = None) -> str:
    """A Markdown table: corruption rows, severity columns, ``metric`` (the
    first summary metric by default) with the drop from clean."""
    metric = metric or self.metrics[0]
    sev = self.severities
    lines = [f'{metric} ({self.protocol}, {self.side} side corrupted, '
             f'{self.corrupted} sequences; clean {self.clean[metric]:.2f}; '
             'cells: score (drop))', '',
             '| corruption | ' + ' | '.join(f's{s}' for s in sev) + ' |',
             '|---|' + '---|' * len(sev)]
    for c in self.corruptions:
      cells = [f'{self.cells[(c, s)][metric]:.2f} '
               f'({self.drop(c, s, metric):+.2f})' if (c, s) in self.cells
               else '–' for s in sev]
      lines.append(f'| {c} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def check_side(side: str) -> str:
  if side not in SIDES:
    raise ValueError(f'Unknown corruption side {side!r}; valid: {SIDES}.')
  return side


def side_indices(evaluator: Any, side: str) -> np.ndarray:
  """Positions of the test sequences to corrupt for ``side``.

  Raises:
    ValueError: an unknown side, or a one-sided request where some sequences
      are both probe and gallery under the protocol (e.g. CCPG), so that one
      side cannot be corrupted alone; 'both' works for every protocol.
  """
  check_side(side)
  src = evaluator.source
  if side == 'both':
    return np.arange(len(src))
  proto = protocols.get_protocol(evaluator.protocol)
  data = protocols.EvalSet.build(np.zeros((len(src), 1, 1), np.float32), src.subjects,
                       src.types, src.views)
  is_probe, is_gallery = proto.sequence_roles(data, evaluator.options)
  both = int(np.sum(is_probe & is_gallery))
  if both:
    raise ValueError(
        f'{both} test sequences are both probe and gallery under protocol '
        f'{proto.name!r}, so the {side} side cannot be corrupted alone; use '
        "side='both'.")
  return np.flatnonzero(is_probe if side == 'probe' else is_gallery)


def evaluate(evaluator: Any, variables: Any, *, side: str = 'probe',
             names: Sequence[str] | None = None,
             severities: Sequence[int] = corruptions.SEVERITIES,
             seed: int = 0, bar=None) -> RobustnessTable:
  """Scores ``variables`` clean and under every corruption × severity.

  Args:
    evaluator: an ``evaluator.Evaluator`` of the run (its test split,
      protocol, options and embedding function).
    variables: {'params': ..., 'batch_stats': ...}.
    side: which sequences are corrupted ('probe', 'gallery', 'both').
    names: corruptions to run (default: all of ``corruptions.CORRUPTIONS``).
    severities: severities to run (1..5).
    seed: the corruptions' extra seed.
    bar: a tqdm bar advanced once per cell (optional).

  Returns:
    The `RobustnessTable`.
  """
  names = list(names or corruptions.CORRUPTIONS)
  for name in names:
    corruptions.get_corruption(name)
  for s in severities:
    if s not in corruptions.SEVERITIES:
      raise ValueError(f'Corruption severity must be in 1..5, got {s!r}.')
  idx = side_indices(evaluator, side)
  clean_emb = evaluator.embed(variables)
  clean = evaluator.score(clean_emb).summary()
  subset = evaluator.source.subset(idx)
  cells = {}
  for name in names:
    for s in severities:
      emb = clean_emb.copy()
      emb[idx] = evaluator.embed(variables,
                                 CorruptedSource(subset, name, s, seed))
      cells[(name, int(s))] = evaluator.score(emb).summary()
      if bar is not None:
        bar.update(1)
  return RobustnessTable(evaluator.protocol, side, tuple(clean), clean,
                         cells, int(idx.size), int(seed))


def write(table: RobustnessTable, out_dir: str,
          metric: str | None = None) -> list[str]:
  """Writes ``robustness.json``, ``robustness.md`` and the heatmap PNG of
  the drops (``robustness_heatmap.png``); returns the paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, n) for n in
           ('robustness.json', 'robustness.md', 'robustness_heatmap.png')]
  with open(paths[0], 'w') as f:
    json.dump(table.to_dict(), f, indent=1)
  with open(paths[1], 'w') as f:
    f.write('\n\n'.join(table.format_table(m) for m in table.metrics) + '\n')
  plot_heatmap(table, paths[2], metric)
  return paths


def plot_heatmap(table: RobustnessTable, path: str,
                 metric: str | None = None) -> None:
  """Corruption × severity heatmap of ``metric``'s drop from clean."""
  metric = metric or table.metrics[0]
  names, sev = table.corruptions, table.severities
  drops = np.array([[table.drop(c, s, metric) if (c, s) in table.cells
                     else np.nan for s in sev] for c in names])
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(1.2 * len(sev) + 3, 0.45 * len(names) + 1.5))
  im = ax.imshow(drops, cmap='magma_r', aspect='auto')
  ax.set_xticks(range(len(sev)), [f'severity {s}' for s in sev])
  ax.set_yticks(range(len(names)), names)
  for (r, c), v in np.ndenumerate(drops):
    if np.isfinite(v):
      ax.text(c, r, f'{v:.1f}', ha='center', va='center', fontsize=8,
              color='white' if v > np.nanmax(drops) * 0.6 else 'black')
  ax.set_title(f'{metric} drop from clean ({table.clean[metric]:.1f}), '
               f'{table.protocol}, {table.side} side')
  fig.colorbar(im, ax=ax, label='points')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
