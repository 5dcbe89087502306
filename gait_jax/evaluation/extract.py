"""Batched, masked embedding extraction of a test split.

Test sequences are length-bucketed and padded with a frame mask
(``data.pipeline.eval_batches``); every temporal op of the models respects the
mask, so a padded batch gives each sequence the embedding it gets alone, and
many sequences go through each forward pass (not one per device). Batches are
split over the devices of the mesh; evaluation uses BatchNorm running
statistics, so no cross-device communication is needed.
"""

from __future__ import annotations

from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import parallel
from gait_jax.data import pipeline
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource


EmbedFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def make_embed_fn(model: Any, mesh: jax.sharding.Mesh,
                  dtype: Any = jnp.float32) -> EmbedFn:
  """jit(variables, sils uint8 [B,L,64,44], mask [B,L]) → [B, parts, c].

  Args:
    model: the eval-mode Linen module.
    mesh: the batch dimension is split over its 'data' axis.
    dtype: compute dtype of the input.
  """
  batch = parallel.batch_sharded(mesh)

  @jax.jit
  def embed(variables, sils, mask):
    sils = jax.lax.with_sharding_constraint(sils, batch)
    x = transforms.to_unit_range(sils, dtype)
    outputs = model.apply(variables, x, mask=mask, train=False)
    return outputs['embeddings'].astype(jnp.float32)

  return embed


def open_test_source(config: Any) -> GaitSource:
  """The test split of ``config.data.dataset_dir``."""
  return GaitSource(config.data.dataset_dir, 'test')


def extract_embeddings(model: Any, variables: Any, source: GaitSource,
                       mesh: jax.sharding.Mesh, *, batch_size: int = 16,
                       buckets: tuple[int, ...] = (32, 64, 128, 256),
                       frame_limit: int | None = None, dtype: Any = jnp.float32,
                       embed: EmbedFn | None = None,
                       cut: bool = True) -> np.ndarray:
  """Embeddings of every sequence of ``source``, in record order.

  Args:
    model: the (eval-mode) Linen module.
    variables: its ``params`` (and ``batch_stats``).
    source: the split to embed.
    mesh: batches are split over its devices.
    batch_size: sequences per forward pass.
    buckets: padded lengths (one compilation each).
    frame_limit: keep at most this many leading frames per sequence.
    dtype: compute dtype of the input.
    embed: ``make_embed_fn(model, mesh, dtype)`` built once by a caller that
      evaluates repeatedly (its compilations are kept); None: built here.
    cut: cut the frames' width (``config.data.cut_width``).

  Returns:
    float32 [N, parts, channels].
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if embed is None:
    embed = make_embed_fn(model, mesh, dtype)
  variables = jax.device_put(variables, parallel.replicated(mesh))
  sharding = parallel.batch_sharded(mesh)
  out = None
  if not len(source):
    raise ValueError(f'{source.dataset_dir} split {source.split!r} holds no '
                     'sequences to embed')
  shape = pipeline.eval_frame_shape(source, cut)
  read = 0
  bar = tqdm(total=len(source), desc='embed', unit='seq', mininterval=2.0,
             disable=jax.process_index() != 0)
  for indices, length in pipeline.eval_plan(
      source, batch_size=batch_size, buckets=buckets, frame_limit=frame_limit,
      multiple_of=mesh.size):
    rows = _DeviceRows(indices)
    # Each process reads only the rows of its own devices.
    sils = jax.make_array_from_callback(
        (len(indices), length) + shape, sharding,
        lambda i, n=length: pipeline.eval_frames(
            source, rows(i), n, shape, frame_limit, cut))
    mask = jax.make_array_from_callback(
        (len(indices), length), sharding,
        lambda i, n=length: pipeline.eval_mask(
            source, rows(i), n, frame_limit))
    read += rows.real
    emb = _to_host(embed(variables, sils, mask))
    real = indices >= 0
    if out is None:
      out = np.zeros((len(source),) + emb.shape[1:], np.float32)
    out[indices[real]] = emb[real]
    bar.update(int(real.sum()))
  bar.close()
  logging.info('Embedded %d sequences; process %d read %d of them.',
               len(source), jax.process_index(), read)
  return out


class _DeviceRows:
  """The record indices of the rows a device holds (``rows(index)``),
  counting the distinct real rows handed out (``real``)."""

  def __init__(self, indices: np.ndarray):
    self._indices = indices
    self._seen: set[int] = set()
    self.real = 0

  def __call__(self, index: tuple[slice, ...]) -> np.ndarray:
    rows = self._indices[index[0]]
    start = index[0].start or 0
    if start not in self._seen:
      self._seen.add(start)
      self.real += int((rows >= 0).sum())
    return rows


def _to_host(x: jax.Array) -> np.ndarray:
  """The whole (possibly multi-process) array on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))
