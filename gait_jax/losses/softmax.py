"""Softmax terms of GIL: pair-softmax (Term 4) and cross-entropy (Term 5).

Term 4 is the GIL authors' ``InfoLoss``: per part, with raw dot products
g_ij = e_i·e_j, every triplet (a, q, m) of the triplet loss is a two-way
softmax that should pick the positive, i.e. softplus((g_am - g_aq)/τ); the
loss is the mean over all triplets, then over parts. It uses the same P×K
blocks (or masked row chunks without ``samples_per_class``) as `triplet`,
with autodiff for the gradient.

Term 5 is OpenGait's CrossEntropyLoss on BNNeck logits [n, classes, parts]:
each part is its own classifier, logits are multiplied by ``scale`` and the
label-smoothed cross-entropy (1-ε)·NLL + ε·mean_k(-log q_k) is averaged over
all n·parts predictions.

Sharding: per-anchor sums and counts are `psum`'d (the CE needs no gather).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gait_jax.losses import _common

Array = jax.Array


def _softplus_sum(gp: Array, gn: Array, temperature: float) -> Array:
  """Σ softplus((g_am - g_aq)/τ) per part: [p, na, K], [p, na, N] -> [p]."""
  z = (gn[..., None, :] - gp[..., :, None]) / temperature  # [p, na, K, N]
  return jnp.sum(jax.nn.softplus(z), axis=(1, 2, 3))


def pair_softmax_from_batch(batch: _common.Batch, temperature: float
                            ) -> tuple[Array, dict[str, Array]]:
  """Pair-softmax loss of a prepared batch (see `pair_softmax_loss`)."""
  axis = batch.axis_name
  g = batch.gram  # [p, na, n]
  match = batch.match  # [na, n]
  k = batch.samples_per_class
  num_pos = jnp.sum(match, axis=1).astype(jnp.float32)  # [na]
  count = _common.psum(jnp.sum(num_pos * (batch.n - num_pos)), axis)
  if k is not None:
    total = _softplus_sum(*batch.split_pk(g, -jnp.inf), temperature)  # [p]
  else:
    def chunk(g_c, match_c, valid):
      z = (g_c[..., None, :] - g_c[..., :, None]) / temperature  # [p,ch,n,n]
      keep = (match_c[:, :, None] & ~match_c[:, None, :]
              & valid[:, None, None])  # [ch, n, n]
      return (jnp.sum(jnp.where(keep[None], jax.nn.softplus(z), 0.0),
                      axis=(1, 2, 3)),)
    (total,) = _common.masked_row_chunks(chunk, ((g, 1), (match, 0)),
                                         batch.parts, batch.n)
  total = _common.psum(total, axis)  # [p]
  per_part = jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)
  loss = jnp.mean(per_part)
  if k is not None:
    loss = jnp.where(batch.pk_ok, loss, jnp.nan)
  return loss, {'per_part': per_part, 'count': count}


def pair_softmax_loss(embeddings: Any, labels: Any, *,
                      temperature: float = 0.1,
                      samples_per_class: int | None = None,
                      axis_name: str | None = None
                      ) -> tuple[Array, dict[str, Array]]:
  """Pair-softmax (InfoLoss) over all triplets of the batch (GIL Term 4).

  Args:
    embeddings: [n, parts, channels] (the local shard under `axis_name`).
    labels: [n] integer identities.
    temperature: softmax temperature τ.
    samples_per_class: static K of a P×K batch (fast gather path; labels that
      break the structure give a NaN loss), or None for any labels (masked
      path, O(p·n³) compute, rematerialised in the backward pass).
    axis_name: mesh axis when called inside `jax.shard_map`.

  Returns:
    (loss, aux): the mean over parts, and aux with 'per_part' [p] and
    'count' (triplets per part).
  """
  if not temperature > 0:
    raise ValueError(f'temperature must be positive, got {temperature!r}.')
  batch = _common.make_batch(embeddings, labels, samples_per_class, axis_name)
  return pair_softmax_from_batch(batch, float(temperature))


def cross_entropy_loss(logits: Any, labels: Any, *, scale: float = 16.0,
                       label_smoothing: float = 0.1,
                       axis_name: str | None = None
                       ) -> tuple[Array, dict[str, Array]]:
  """Per-part softmax cross-entropy with label smoothing (GIL Term 5).

  Args:
    logits: [n, classes, parts] (the local shard under `axis_name`).
    labels: [n] integer class indices in [0, classes).
    scale: multiplier of the logits (16 for cosine BNNeck logits).
    label_smoothing: ε; the target puts 1-ε on the label and ε spread
      uniformly over all classes.
    axis_name: mesh axis when called inside `jax.shard_map`.

  Returns:
    (loss, aux): the mean over all n·parts predictions, and aux with
    'per_part' [p] losses and 'accuracy' (top-1 over n·parts).
  """
  logits = jnp.asarray(logits)
  if logits.ndim != 3:
    raise ValueError('logits must have shape [n, classes, parts], got shape '
                     f'{logits.shape}.')
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(
        f'label_smoothing must be in [0, 1), got {label_smoothing!r}.')
  labels = _common.check_labels(labels, logits.shape[0],
                                f'logits of shape {logits.shape}')
  z = logits.astype(jnp.float32) * scale  # [n, C, p]
  logp = jax.nn.log_softmax(z, axis=1)  # [n, C, p]
  nll = -jnp.take_along_axis(logp, labels[:, None, None], axis=1)[:, 0]
  uniform = -jnp.mean(logp, axis=1)  # [n, p]
  per_sample = (1.0 - label_smoothing) * nll + label_smoothing * uniform
  n = _common.psum(logits.shape[0], axis_name)
  per_part = _common.psum(jnp.sum(per_sample, axis=0), axis_name) / n  # [p]
  correct = jnp.argmax(z, axis=1) == labels[:, None]  # [n, p]
  accuracy = _common.psum(jnp.sum(correct, dtype=jnp.float32),
                          axis_name) / (n * logits.shape[2])
  return jnp.mean(per_part), {'per_part': per_part, 'accuracy': accuracy}
