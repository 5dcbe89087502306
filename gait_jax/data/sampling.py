"""Stateless P×K batch sampling and per-sequence frame sampling.

Every random choice here is a pure function of ``(seed, step)`` (and of the
position in the batch for frame sampling and augmentation), so that:

* every host computes the same global batch and loads only its own slice;
* a run resumed at step ``s`` sees exactly the batches an uninterrupted run
  sees, without saving any sampler state;
* the number of data-loading workers never changes what is sampled.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

FRAME_SAMPLERS = ('fixed_unordered', 'fixed_ordered', 'unfixed_unordered',
                  'all_ordered', 'tracklet')
# The samplers that build training batches (all but ``all_ordered``).
TRAIN_SAMPLERS = tuple(m for m in FRAME_SAMPLERS if m != 'all_ordered')

# TrackletGait's Random Tracklet Sampling: tracklet length L drawn per
# sequence from these lengths with these probabilities (32 frames in all).
TRACKLET_LENGTHS = (8, 16, 32)
TRACKLET_PROBS = (0.2, 0.3, 0.5)

# Stream tags keep the batch, frame and augmentation random streams
# independent.
_BATCH_STREAM = 0
_FRAME_STREAM = 1
_AUGMENT_STREAM = 2


def rng_for(seed: int, *keys: int) -> np.random.Generator:
  """A NumPy generator that depends only on ``seed`` and ``keys``."""
  return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
      [int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in keys]])))


@dataclasses.dataclass(frozen=True)
class PKBatch:
  """The global batch of one step.

  Attributes:
    indices: [P*K] record indices into the training source.
    labels: [P*K] class indices (position of the subject in the sorted
      training-subject list).
  """
  indices: np.ndarray
  labels: np.ndarray


class PKSampler:
  """P identities × K sequences per identity, as a pure function of the step.

  Identities are drawn without replacement; an identity with at least K
  sequences contributes K distinct ones, a shorter one is sampled with
  replacement (duplicates count as distinct samples in the losses).

  Args:
    subject_indices: for each class label ``0..C-1`` (in order), the record
      indices of its sequences.
    p: identities per batch.
    k: sequences per identity.
    seed: the run's data seed.
    batch_shuffle: shuffle the P*K list (OpenGait's ``batch_shuffle``). Off,
      the batch is ordered identity by identity.
  """

  def __init__(self, subject_indices: Sequence[Sequence[int]], p: int, k: int,
               seed: int, batch_shuffle: bool = False):
    num_classes = len(subject_indices)
    if p < 1 or k < 1:
      raise ValueError(f'P and K must be positive, got P={p}, K={k}.')
    if p > num_classes:
      raise ValueError(
          f'data.p={p} identities per batch, but the training split has only '
          f'{num_classes} subjects with sequences. Lower data.p.')
    empty = [c for c, idx in enumerate(subject_indices) if len(idx) == 0]
    if empty:
      raise ValueError(f'Classes without sequences: {empty[:10]}.')
    self._subject_indices = [np.asarray(i, np.int64) for i in subject_indices]
    self.p, self.k, self.seed = p, k, seed
    self.batch_shuffle = batch_shuffle
    self.num_classes = num_classes

  @property
  def batch_size(self) -> int:
    return self.p * self.k

  def __call__(self, step: int) -> PKBatch:
    """Returns the global batch of ``step``."""
    rng = rng_for(self.seed, _BATCH_STREAM, step)
    classes = rng.choice(self.num_classes, size=self.p, replace=False)  # [P]
    indices = np.empty((self.p, self.k), np.int64)
    for row, c in enumerate(classes):
      pool = self._subject_indices[c]
      indices[row] = rng.choice(pool, size=self.k, replace=len(pool) < self.k)
    labels = np.repeat(classes, self.k)  # [P*K]
    indices = indices.reshape(-1)  # [P*K]
    if self.batch_shuffle:
      perm = rng.permutation(self.p * self.k)
      indices, labels = indices[perm], labels[perm]
    return PKBatch(indices=indices, labels=labels.astype(np.int32))

  def __repr__(self) -> str:  # Deterministic: grain checks it on restore.
    return (f'PKSampler(p={self.p}, k={self.k}, seed={self.seed}, '
            f'classes={self.num_classes}, shuffle={self.batch_shuffle})')


def host_slice(batch_size: int, process_index: int,
               process_count: int) -> slice:
  """The contiguous slice of the global batch that one host loads."""
  if batch_size % process_count:
    raise ValueError(f'Global batch {batch_size} is not divisible by the '
                     f'{process_count} processes.')
  per_host = batch_size // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def check_frames_range(frames_range) -> tuple[int, int]:
  """Validates ``data.frames_range`` = (min, max) of ``unfixed_unordered``.

  Args:
    frames_range: two integers with ``1 <= min <= max``.

  Returns:
    ``(min, max)`` as Python ints.

  Raises:
    ValueError: anything else (the message names the config key).
  """
  ok = (not isinstance(frames_range, (str, bytes))
        and hasattr(frames_range, '__len__') and len(frames_range) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                for v in frames_range)
        and 1 <= frames_range[0] <= frames_range[1])
  if not ok:
    raise ValueError(
        f'data.frames_range={frames_range!r}: the unfixed_unordered sampler '
        'needs two integers (min, max) with 1 <= min <= max.')
  return int(frames_range[0]), int(frames_range[1])


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_tracklets(num_frames, lengths=TRACKLET_LENGTHS,
                    probs=TRACKLET_PROBS
                    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
  """Validates the ``tracklet`` sampler's config.

  Args:
    num_frames: ``data.num_frames``, the total frames F per sequence.
    lengths: ``data.tracklet_lengths``, positive integers dividing F.
    probs: ``data.tracklet_probs``, one probability >= 0 per length,
      summing to 1.

  Returns:
    ``(lengths, probs)`` as tuples of Python ints / floats.

  Raises:
    ValueError: naming the offending config key.
  """
  seq = lambda x: (not isinstance(x, (str, bytes)) and hasattr(x, '__len__')
                   and len(x) > 0)
  if not (seq(lengths) and all(_is_int(v) and v >= 1 for v in lengths)):
    raise ValueError(f'data.tracklet_lengths={lengths!r}: the tracklet '
                     'sampler needs a non-empty list of positive integers.')
  if not (seq(probs) and len(probs) == len(lengths) and all(
      isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
      and v >= 0 for v in probs) and abs(sum(probs) - 1.0) < 1e-6):
    raise ValueError(
        f'data.tracklet_probs={probs!r}: the tracklet sampler needs one '
        f'probability >= 0 per entry of data.tracklet_lengths={lengths!r}, '
        'summing to 1.')
  if not _is_int(num_frames) or num_frames < 1 or any(
      num_frames % v for v in lengths):
    raise ValueError(
        f'data.num_frames={num_frames!r} must be a positive multiple of every '
        f'tracklet length in data.tracklet_lengths={tuple(lengths)} '
        '(TrackletGait: 32).')
  return tuple(int(v) for v in lengths), tuple(float(v) for v in probs)


def sample_tracklets(rng: np.random.Generator, length: int, num_frames: int,
                     lengths=TRACKLET_LENGTHS,
                     probs=TRACKLET_PROBS) -> np.ndarray:
  """TrackletGait's Random Tracklet Sampling (arXiv 2508.02143 and its released code).

  Draws one tracklet length L (index into ``lengths`` with ``probs``), then
  ``num_frames // L`` tracklets of L consecutive frames each: if the index
  list is shorter than L it is tiled ceil(L / len) + 1 times (and stays
  tiled for the later tracklets), the start is uniform in
  ``0..len(list) - L``. Tracklets are concatenated in draw order.

  Returns:
    int64 [num_frames] frame indices.
  """
  lengths, probs = check_tracklets(num_frames, lengths, probs)
  span = lengths[int(rng.choice(len(lengths), p=np.asarray(probs)))]
  base = np.arange(length)
  out = []
  for _ in range(num_frames // span):
    if len(base) < span:
      base = np.tile(base, -(-span // len(base)) + 1)
    start = int(rng.integers(0, len(base) - span + 1))
    out.append(base[start:start + span])
  return np.concatenate(out).astype(np.int64)


def sample_frames(rng: np.random.Generator, length: int, mode: str,
                  num_frames: int = 30, skip: int = 0,
                  frames_range: tuple[int, int] | None = None,
                  tracklet_lengths=TRACKLET_LENGTHS,
                  tracklet_probs=TRACKLET_PROBS) -> np.ndarray:
  """Frame indices for one sequence (OpenGait's collate semantics).

  Args:
    rng: random generator for this sequence.
    length: number of frames L of the sequence (>= 1).
    mode: ``fixed_unordered`` — ``num_frames`` random frames, unsorted, with
      replacement only when L < num_frames; ``fixed_ordered`` — a window of
      W = ``num_frames + skip`` consecutive positions of the index list
      (tiled ceil(W / L) times when L < W), start uniform in
      ``0..len(list) - W``, of which ``num_frames`` positions drawn without
      replacement are kept in order; ``unfixed_unordered`` — F drawn
      uniformly from ``frames_range`` = (min, max), both ends included, then
      as ``fixed_unordered`` with F frames; ``all_ordered`` — every frame in
      order; ``tracklet`` — `sample_tracklets` (TrackletGait).
    num_frames: frames per training sequence (``fixed_*``, ``tracklet``).
    skip: extra window length for ``fixed_ordered`` (GaitPart uses 10,
      DeepGaitV2 4).
    frames_range: (min, max) frames of ``unfixed_unordered``.
    tracklet_lengths: tracklet lengths of ``tracklet``.
    tracklet_probs: their probabilities.

  Returns:
    int64 [num_frames] (F for ``unfixed_unordered``, L for ``all_ordered``)
    frame indices.
  """
  if length < 1:
    raise ValueError(f'Sequence length must be >= 1, got {length}.')
  if mode == 'all_ordered':
    return np.arange(length)
  if mode == 'tracklet':
    return sample_tracklets(rng, length, num_frames, tracklet_lengths,
                            tracklet_probs)
  if mode == 'unfixed_unordered':
    low, high = check_frames_range(frames_range)
    num_frames = int(rng.integers(low, high + 1))  # F, per sequence.
    mode = 'fixed_unordered'
  if mode == 'fixed_unordered':
    return rng.choice(length, size=num_frames, replace=length < num_frames)
  if mode == 'fixed_ordered':
    window = num_frames + skip
    base = np.arange(length)
    if length < window:
      base = np.tile(base, -(-window // length))  # ceil(window / L) copies
    start = rng.integers(0, len(base) - window + 1)
    chosen = np.sort(rng.choice(window, size=num_frames, replace=False))
    return base[start + chosen]
  raise ValueError(f'Unknown frame sampler {mode!r}; valid: {FRAME_SAMPLERS}.')


def frame_rng(seed: int, step: int, position: int) -> np.random.Generator:
  """The generator for the frames of batch position ``position`` at ``step``."""
  return rng_for(seed, _FRAME_STREAM, step, position)


def augment_rng(seed: int, step: int, position: int,
                op: int) -> np.random.Generator:
  """The generator of augmentation ``op`` for batch position ``position``.

  Args:
    seed: the run's data seed.
    step: the training step.
    position: the sequence's row in the global batch.
    op: the op's fixed stream number (``augment.RandomRotate.stream``, ...).

  Returns:
    A generator independent of the frame and batch streams and of the other
    ops'.
  """
  return rng_for(seed, _AUGMENT_STREAM, step, position, op)

