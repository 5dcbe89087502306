"""Ranking kernels of the retrieval protocols, one block of probes at a time.

Every protocol ranks a probe's gallery by distance. Here the order is that
of a stable sort of the probe's distance row: ties are broken by gallery
order (OpenGait's sorts, torch ``topk``/``sort`` and NumPy's default
``argsort``, leave the order of ties unspecified). The kernels work on one
[b, g] block of the probe x gallery distance matrix, so memory stays
bounded by the block size whatever the set sizes:

* `first_match_rank`: per probe, the 0-based position of its first true
  match (no sort: two comparisons per entry). A probe is a rank-k hit iff
  that position is < k, which gives CMC curves, the single-view cells and
  the GREW proxy.
* `rank_list_block`: the first-match position, average precision and
  inverse negative penalty of each probe (OpenGait ``evaluate_rank`` and
  ``evaluate_many``), from one stable argsort of the block.
* `stable_topk`: the k nearest gallery indices in rank order (argpartition,
  then a sort of the k).
* `distance_blocks`: the [b, g] distance blocks of a probe set against a
  gallery (gallery gathered once).
* `label_codes`: integer codes of string labels, so the kernels compare
  integers.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from gait_jax.evaluation import retrieval

# Distance entries per probe block of the ranking rules (16 MiB of float32;
# a stable argsort of the block and its cumulative sums take ~10x that).
RANK_BLOCK_ELEMENTS = 1 << 22


def label_codes(*labels: np.ndarray) -> list[np.ndarray]:
  """Integer codes of several label arrays over their joint vocabulary."""
  flat = np.concatenate([np.asarray(x) for x in labels])
  _, codes = np.unique(flat, return_inverse=True)
  codes = codes.reshape(-1).astype(np.int64)
  out, start = [], 0
  for x in labels:
    out.append(codes[start:start + len(x)])
    start += len(x)
  return out


def distance_blocks(embeddings: np.ndarray, probe_idx: np.ndarray,
                    gallery_idx: np.ndarray, metric: str, backend: str, *,
                    block_elements: int | None = None
                    ) -> Iterator[tuple[slice, np.ndarray]]:
  """Distances of a probe set to a gallery, one block of probes at a time.

  Args:
    embeddings: [N, p, c] embeddings of the test set.
    probe_idx: [m] rows of the probes.
    gallery_idx: [g] rows of the gallery.
    metric: 'euc' or 'cos'.
    backend: 'numpy' or 'jax' (`retrieval.part_distance`).
    block_elements: probe rows per block = block_elements // g; None:
      `RANK_BLOCK_ELEMENTS` (read at call time).

  Yields:
    (rows, dist): a slice of ``probe_idx`` and its float32 [b, g] distances.
  """
  gallery = embeddings[gallery_idx]  # [g, p, c], gathered once
  block_elements = block_elements or RANK_BLOCK_ELEMENTS
  rows = max(1, block_elements // max(len(gallery_idx), 1))
  for start in range(0, len(probe_idx), rows):
    sl = slice(start, min(start + rows, len(probe_idx)))
    yield sl, retrieval.part_distance(embeddings[probe_idx[sl]], gallery,
                                      metric, backend=backend)


def first_match_rank(dist: np.ndarray, rel: np.ndarray,
                     keep: np.ndarray | None = None) -> np.ndarray:
  """Position of each probe's first true match in its stable ranking.

  Args:
    dist: [b, g] distances.
    rel: [b, g] bool, true matches (already without removed items).
    keep: [b, g] bool, the gallery items that are ranked at all; None: all.

  Returns:
    int64 [b]: the number of ranked items before the first true match
    (0 = rank-1 hit); -1 for a probe without a true match.
  """
  b, g = dist.shape
  if g == 0:
    return np.full(b, -1, np.int64)
  best = np.where(rel, dist, np.inf).min(1)[:, None]  # [b, 1]
  at_best = rel & (dist == best)
  j_best = np.argmax(at_best, 1)[:, None]  # [b, 1] first such index
  before = (dist < best) | ((dist == best)
                            & (np.arange(g)[None, :] < j_best))  # [b, g]
  if keep is not None:
    before &= keep
  rank = before.sum(1)
  return np.where(at_best.any(1), rank, -1).astype(np.int64)


def rank_list_block(dist: np.ndarray, rel: np.ndarray,
                    keep: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """First match, AP and INP of each probe over its whole ranked list.

  The removed items (``~keep``) are dropped from the ranked list before
  positions are counted (OpenGait ``evaluate_many``). With matches m_j at
  1-based positions j: AP = mean over true matches of (#matches up to j) / j;
  INP = #matches / (position of the last match), on the cumulative match
  count that is not clipped at 1.

  Args:
    dist: [b, g] distances.
    rel: [b, g] bool, true matches.
    keep: [b, g] bool, ranked items; None: all.

  Returns:
    (first [b] int64, -1 without a true match; ap [b]; inp [b]), AP and
    INP float64 in [0, 1], NaN without a true match.
  """
  b, g = dist.shape
  if g == 0:
    nan = np.full(b, np.nan)
    return np.full(b, -1, np.int64), nan, nan.copy()
  order = np.argsort(dist, axis=1, kind='stable')  # [b, g]
  rel_o = np.take_along_axis(rel, order, 1)  # [b, g] bool
  if keep is None:
    pos = np.broadcast_to(np.arange(1, g + 1), (b, g))  # 1-based positions
  else:
    keep_o = np.take_along_axis(keep, order, 1)
    rel_o &= keep_o
    pos = np.cumsum(keep_o, 1)  # [b, g] positions among the kept items
  del order
  found = np.cumsum(rel_o, 1)  # [b, g] unclipped match count
  num_rel = found[:, -1]  # [b]
  valid = num_rel > 0
  precision = np.where(rel_o, found / np.maximum(pos, 1), 0.0)  # [b, g]
  ap = precision.sum(1) / np.maximum(num_rel, 1)
  rows = np.arange(b)
  first = pos[rows, np.argmax(rel_o, 1)] - 1
  last = pos[rows, g - 1 - np.argmax(rel_o[:, ::-1], 1)]  # 1-based
  inp = num_rel / np.maximum(last, 1)
  return (np.where(valid, first, -1).astype(np.int64),
          np.where(valid, ap, np.nan), np.where(valid, inp, np.nan))


def stable_topk(dist: np.ndarray, k: int) -> np.ndarray:
  """The k nearest gallery indices of each row, nearest first.

  Exactly the first k of a stable argsort (ties by gallery order), without
  sorting the whole row: argpartition finds the k-th distance, the items
  tied with it are taken in gallery order, then the k are sorted.

  Args:
    dist: [b, g] distances.
    k: how many (at most g).

  Returns:
    int64 [b, k] gallery indices.
  """
  b, g = dist.shape
  if not 0 < k <= g:
    raise ValueError(f'k={k} must be in 1..{g} (gallery size)')
  kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]  # [b, 1]
  below = dist < kth  # [b, g]
  tied = dist == kth
  room = k - below.sum(1, keepdims=True)  # [b, 1] ties to take
  chosen = below | (tied & (np.cumsum(tied, 1) <= room))  # k per row
  rows, cols = np.nonzero(chosen)  # row-major: cols ascending per row
  cols = cols.reshape(b, k)
  picked = np.take_along_axis(dist, cols, 1)  # [b, k]
  order = np.argsort(picked, axis=1, kind='stable')  # ties keep index order
  return np.take_along_axis(cols, order, 1).astype(np.int64)


def view_first_ranks(blocks: Iterator[tuple[slice, np.ndarray]],
                     probe_codes: np.ndarray, gallery_codes: np.ndarray,
                     gallery_view: np.ndarray, num_views: int) -> np.ndarray:
  """First-match positions of each probe in each single-view gallery.

  Args:
    blocks: `distance_blocks` of the probes against the whole gallery.
    probe_codes: [m] subject codes of the probes.
    gallery_codes: [g] subject codes of the gallery.
    gallery_view: [g] view index (0..V-1) of each gallery item.
    num_views: V.

  Returns:
    int64 [m, V]: the position of the probe's first true match among the
    gallery items of view v (0 = rank-1 hit); -1 when there is none.
  """
  m = probe_codes.shape[0]
  out = np.full((m, num_views), -1, np.int64)
  cols = [np.flatnonzero(gallery_view == v) for v in range(num_views)]
  for sl, dist in blocks:
    pc = probe_codes[sl, None]  # [b, 1]
    for v, c in enumerate(cols):
      if c.size:
        out[sl, v] = first_match_rank(dist[:, c], pc == gallery_codes[c])
  return out


def cell_accuracy(ranks: np.ndarray, hit_rank: int, remove_missing: bool,
                  empty: np.ndarray) -> np.ndarray:
  """Rank-k accuracy (%) of a group of probes per gallery view, rounded.

  Args:
    ranks: [m, V] from `view_first_ranks` (the probes of one probe view).
    hit_rank: k; a probe is a hit in view v iff 0 <= ranks[:, v] < k.
    remove_missing: leave out probes without a true match in view v
      (otherwise they are misses).
    empty: [V] bool, gallery views without items (NaN cells).

  Returns:
    float64 [V]: round(#hits * 100 / #probes, 2); NaN for no probe.
  """
  hits = ((ranks >= 0) & (ranks < hit_rank)).sum(0)  # [V]
  count = ((ranks >= 0).sum(0) if remove_missing
           else np.full(ranks.shape[1], ranks.shape[0]))
  with np.errstate(invalid='ignore', divide='ignore'):
    acc = np.round(hits * 100 / count, 2)
  acc[(count == 0) | empty] = np.nan
  return acc
