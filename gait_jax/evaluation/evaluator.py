"""`Evaluator`: the one path that embeds, scores and writes an evaluation.

Both evaluation during training (``train.eval_every``) and the final or
stand-alone evaluation go through `Evaluator.run`: embed the test split
(every process), score it with the protocol, write ``eval_<step>.json`` and
``eval_latest.json`` (process 0), the protocol's own files in final runs
(e.g. ``grew_submission.csv``, `protocols.write_outputs`), the plots (final
runs with ``eval.plots``), the ``eval/<key>`` scalars (when given a metric
writer) and print the table or a one-line summary.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging

from gait_jax import experiment
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource
from gait_jax.evaluation import extract
from gait_jax.evaluation import plots
from gait_jax.evaluation import protocols
from gait_jax.evaluation import report
from gait_jax.evaluation import retrieval


def protocol_name(eval_cfg: Any, source: GaitSource) -> str:
  """``eval.protocol``, or else the one the dataset metadata names.

  Raises:
    ValueError: neither names one, or the name is not registered.
  """
  name = eval_cfg.protocol or source.metadata.get('protocol')
  if not name:
    raise ValueError(f'{source.dataset_dir} names no protocol in its metadata;'
                     ' set eval.protocol (one of '
                     f'{protocols.protocol_names()}).')
  return protocols.get_protocol(name).name


class Evaluator:
  """Evaluates model variables on the test split under the run's protocol.

  The constructor opens the test split, resolves and validates the protocol,
  its options, the distance metric and backend (so a bad config fails before
  any embedding) and builds the jitted embedding function once: later runs
  reuse its compilations. The variables are read where they lie (e.g.
  replicated on the training mesh) and not changed: BatchNorm uses its
  running statistics and nothing draws random numbers.

  Args:
    config: the experiment config (``data.dataset_dir``, ``eval.*``,
      ``train.compute_dtype``).
    model: the eval-mode Linen module (``axis_name=None``).
    mesh: a mesh with a 'data' axis; batches are split over it.
    workdir: where reports and plots go.
    protocol_options: options of the protocol (e.g. ``remove_no_gallery``);
      they override the dataset metadata's ``protocol_options`` (e.g. the
      probe set a synthetic Gait3D-style dataset was rendered with), which
      apply when the run uses the protocol the metadata names.
  """

  def __init__(self, config: Any, model: Any, mesh: jax.sharding.Mesh,
               workdir: str, *,
               protocol_options: Mapping[str, Any] | None = None):
    self._config = config
    self._model = model
    self._mesh = mesh
    self.workdir = workdir
    self.source = extract.open_test_source(config)
    self.protocol = protocol_name(config.eval, self.source)
    meta = self.source.metadata
    own = (meta.get('protocol_options', {})
           if meta.get('protocol') == self.protocol else {})
    self.options = protocols.get_protocol(self.protocol).check_options({
        **own, **dict(protocol_options or {})})
    self.metric = retrieval.check_metric(config.eval.metric)
    self.backend = retrieval.check_backend(config.eval.distance_backend)
    self._dtype = experiment.compute_dtype(config)
    self._embed = extract.make_embed_fn(model, mesh, self._dtype)
    self._cut = transforms.check_cut(config.data.get('cut_width', True))

  def embed(self, variables: Any, source: Any = None) -> np.ndarray:
    """float32 [N, parts, c] embeddings of the test split, or of ``source``
    (e.g. a subset of it, or a ``robustness.CorruptedSource``); every
    process must call it and each gets all of them."""
    cfg = self._config.eval
    return extract.extract_embeddings(
        self._model, variables, self.source if source is None else source,
        self._mesh,
        batch_size=cfg.batch_size, buckets=tuple(cfg.buckets),
        frame_limit=cfg.frame_limit or None, dtype=self._dtype,
        embed=self._embed,
        cut=self._cut)

  def score(self, embeddings: np.ndarray) -> protocols.ProtocolResult:
    """The protocol result of [N, parts, c] test embeddings."""
    src = self.source
    return protocols.evaluate(self.protocol, embeddings, src.subjects,
                              src.types, src.views, metric=self.metric,
                              backend=self.backend, **self.options)

  def evaluate(self, variables: Any
               ) -> tuple[protocols.ProtocolResult, np.ndarray]:
    """Embeds and scores; returns the result and the embeddings."""
    emb = self.embed(variables)
    return self.score(emb), emb

  def run(self, step: int, variables: Any, *, final: bool, writer=None,
          bar=None,
          extra: dict[str, Any] | None = None) -> protocols.ProtocolResult:
    """Evaluates, writes the report (and plots, scalars) and prints.

    Every process must call it; process 0 writes and prints.

    Args:
      step: the training step of ``variables``.
      variables: {'params': ..., 'batch_stats': ...}.
      final: print the whole table and write the plots (if ``eval.plots``);
        otherwise print one line.
      writer: a ``metric_writer.MetricWriter``: gets ``eval/<key>`` scalars
        of the summary at ``step``.
      bar: a tqdm bar to print through (``bar.write``) instead of print.
      extra: further top-level entries of the JSON report.

    Returns:
      The protocol result.
    """
    began = time.perf_counter()
    result, emb = self.evaluate(variables)
    summary = result.summary()
    if writer is not None:
      writer.write_scalars(step, {f'eval/{k}': v for k, v in summary.items()})
    path, written = None, []
    if jax.process_index() == 0:
      path = report.write_report(result, self.workdir, step, extra)
      if final:
        written = protocols.write_outputs(
            self.protocol, emb, self.source.subjects, self.source.types,
            self.source.views, self.workdir, metric=self.metric,
            backend=self.backend)
      if final and self._config.eval.plots:
        plots.write_plots(result, emb, self.source.subjects, self.workdir)
    seconds = time.perf_counter() - began
    if final:
      _say(result.format_table(), bar)
      _say(f'Report: {path}', bar)
      for out in written:
        _say(f'Wrote: {out}', bar)
    else:
      numbers = ' '.join(f'{k}={v:.2f}' for k, v in summary.items())
      _say(f'eval at step {step} ({result.protocol}): {numbers} '
           f'({seconds:.1f} s)', bar)
    return result


def _say(message: str, bar=None) -> None:
  """Logs ``message``; process 0 also prints it (through ``bar``)."""
  logging.info(message)
  if jax.process_index() == 0:
    if bar is not None:
      bar.write(message)
    else:
      print(message, flush=True)
