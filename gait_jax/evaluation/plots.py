"""Evaluation plots: per-view rank-1 heatmaps and a t-SNE of test embeddings.

* ``rank1_<set>.png``: probe view × gallery view rank-1 matrix of each probe
  set (single-view-gallery protocols).
* ``tsne.png``: a 2-D t-SNE of the test embeddings (parts flattened and
  L2-normalised), coloured by subject — tight, separated clusters mean a
  discriminative embedding.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.evaluation.protocols import ProtocolResult


def pyplot():
  """matplotlib.pyplot on the non-interactive Agg backend."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_rank1_heatmaps(result: ProtocolResult, workdir: str) -> list[str]:
  """One PNG per probe set with a [V, V] matrix. Returns the paths."""
  plt = pyplot()
  paths = []
  views = list(result.views)
  for name, probe_set in result.probe_sets.items():
    if probe_set.matrix is None:
      continue
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(probe_set.matrix, vmin=0, vmax=100, cmap='viridis')
    ax.set_xticks(range(len(views)), views, rotation=90)
    ax.set_yticks(range(len(views)), views)
    ax.set_xlabel('gallery view')
    ax.set_ylabel('probe view')
    ax.set_title(f'{result.protocol} {name}: rank-1 (%), mean excl. '
                 f'identical view {probe_set.mean:.2f}')
    for i in range(len(views)):
      for j in range(len(views)):
        value = probe_set.matrix[i, j]
        ax.text(j, i, f'{value:.0f}', ha='center', va='center', fontsize=6,
                color='white' if value < 60 else 'black')
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = os.path.join(workdir, f'rank1_{name}.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
  return paths


def _affinities(x: np.ndarray, perplexity: float) -> np.ndarray:
  """Symmetric t-SNE input affinities P [N, N] by per-point binary search."""
  sq = np.square(x).sum(1)  # [N]
  d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)  # [N, N]
  n = len(x)
  target = np.log(perplexity)
  beta = np.ones(n)
  lo, hi = np.full(n, 0.0), np.full(n, np.inf)
  for _ in range(60):  # Vectorised bisection on the precision of each row.
    p = np.exp(-d * beta[:, None])
    np.fill_diagonal(p, 0.0)
    s = p.sum(1, keepdims=True) + 1e-12
    p /= s
    entropy = -(p * np.log(p + 1e-12)).sum(1)
    too_flat = entropy > target
    lo = np.where(too_flat, beta, lo)
    hi = np.where(too_flat, hi, beta)
    beta = np.where(np.isinf(hi), beta * 2, (lo + hi) / 2)
  p = (p + p.T) / (2 * n)
  return np.maximum(p, 1e-12)


def tsne(x: np.ndarray, *, perplexity: float = 30.0, steps: int = 500,
         seed: int = 0) -> np.ndarray:
  """Exact t-SNE (O(N²) memory) of x [N, d] → [N, 2], jitted steps."""
  p = jnp.asarray(_affinities(x.astype(np.float64), perplexity), jnp.float32)
  y0 = jax.random.normal(jax.random.key(seed), (len(x), 2)) * 1e-2

  def kl_grad(y, exaggeration):
    diff = y[:, None, :] - y[None, :, :]  # [N, N, 2]
    q_num = 1.0 / (1.0 + jnp.square(diff).sum(-1))  # [N, N]
    q_num = q_num * (1.0 - jnp.eye(len(y)))
    q = jnp.maximum(q_num / q_num.sum(), 1e-12)
    w = (exaggeration * p - q) * q_num
    return 4.0 * (w[:, :, None] * diff).sum(1)

  def body(i, carry):
    y, velocity, gains = carry
    early = i < 100
    grad = kl_grad(y, jnp.where(early, 12.0, 1.0))
    momentum = jnp.where(early, 0.5, 0.8)
    same = jnp.sign(grad) == jnp.sign(velocity)
    gains = jnp.maximum(jnp.where(same, gains * 0.8, gains + 0.2), 0.01)
    velocity = momentum * velocity - 200.0 * gains * grad
    return y + velocity, velocity, gains

  y, _, _ = jax.jit(lambda y: jax.lax.fori_loop(
      0, steps, body, (y, jnp.zeros_like(y), jnp.ones_like(y))))(y0)
  return np.asarray(y)


def plot_tsne(emb: np.ndarray, subjects: Sequence[Any], workdir: str, *,
              max_subjects: int = 10, seed: int = 0) -> str:
  """t-SNE of the embeddings of up to ``max_subjects`` test subjects."""
  plt = pyplot()
  subjects = np.asarray(subjects)
  chosen = sorted(set(subjects.tolist()))[:max_subjects]
  keep = np.isin(subjects, chosen)
  x = emb[keep].reshape(int(keep.sum()), -1)  # [N, parts * c]
  x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
  y = tsne(x, perplexity=min(30.0, max(5.0, len(x) / 10)), seed=seed)
  fig, ax = plt.subplots(figsize=(6.4, 6.0))
  cmap = plt.get_cmap('tab20')
  for i, s in enumerate(chosen):
    sel = subjects[keep] == s
    ax.scatter(y[sel, 0], y[sel, 1], s=6, color=cmap(i % 20), label=s)
  ax.legend(fontsize=6, markerscale=2, ncol=2, title='subject')
  ax.set_title(f't-SNE of test embeddings ({len(chosen)} subjects, '
               f'{len(x)} sequences)')
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  path = os.path.join(workdir, 'tsne.png')
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write_plots(result: ProtocolResult, emb: np.ndarray,
                subjects: Sequence[Any], workdir: str) -> list[str]:
  """All evaluation plots of one run; returns the written paths.

  Args:
    result: the protocol result (heatmaps of its [V, V] matrices).
    emb: [N, parts, c] test embeddings.
    subjects: [N] their subjects.
    workdir: where the PNGs go.
  """
  os.makedirs(workdir, exist_ok=True)
  paths = plot_rank1_heatmaps(result, workdir)
  paths.append(plot_tsne(emb, subjects, workdir))
  return paths
