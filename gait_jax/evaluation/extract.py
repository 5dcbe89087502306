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
                       embed: EmbedFn | None = None) -> np.ndarray:
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

  Returns:
    float32 [N, parts, channels].
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if embed is None:
    embed = make_embed_fn(model, mesh, dtype)
  variables = jax.device_put(variables, parallel.replicated(mesh))
  sharding = parallel.batch_sharded(mesh)
  out = None
  bar = tqdm(total=len(source), desc='embed', unit='seq', mininterval=2.0,
             disable=jax.process_index() != 0)
  for batch in pipeline.eval_batches(source, batch_size=batch_size,
                                     buckets=buckets, frame_limit=frame_limit,
                                     multiple_of=mesh.size):
    # Every process holds the same batch; each places its devices' rows.
    sils, mask = (jax.make_array_from_callback(x.shape, sharding,
                                               lambda i, x=x: x[i])
                  for x in (batch.sils, batch.mask))
    emb = _to_host(embed(variables, sils, mask))
    real = batch.indices >= 0
    if out is None:
      out = np.zeros((len(source),) + emb.shape[1:], np.float32)
    out[batch.indices[real]] = emb[real]
    bar.update(int(real.sum()))
  bar.close()
  return out


def _to_host(x: jax.Array) -> np.ndarray:
  """The whole (possibly multi-process) array on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))
