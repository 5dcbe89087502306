"""grain pipelines: P×K training batches and length-bucketed eval batches.

Training: a ``grain.MapDataset`` over step numbers whose element ``s`` is this
host's slice of global batch ``s`` (a pure function of the seed and ``s``), so
the P×K structure is built *before* any worker sees it and ``mp_prefetch``
only parallelises whole batches. Resuming at step ``s`` starts the range at
``s``: no iterator state has to be checkpointed. Training augmentation
(``augment.py``) runs per sequence in OpenGait's Compose order (perspective
before cutting, the other ops after), from the same stateless randomness.
With ``unfixed_unordered`` the sequences of a batch have F_i frames each
(F_i uniform in ``frames_range``); they are padded with zero frames to
``max`` and the batch's ``mask`` is False on the padding (OpenGait instead
concatenates them along time with ``seqL``).

Evaluation: sequences sorted by length, grouped into batches padded to a few
bucket lengths, with a frame mask, so that the jitted model compiles once per
bucket and every sequence gets the embedding it would get alone.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import grain
import numpy as np

from gait_jax.data import augment as augment_lib
from gait_jax.data import sampling
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource


@dataclasses.dataclass
class TrainBatchLoader:
  """Loads this host's slice of the global batch of a step.

  Attributes:
    source: the training split.
    sampler: the global P×K sampler.
    frame_sampler: one of ``sampling.TRAIN_SAMPLERS``.
    num_frames: frames per sequence; for ``unfixed_unordered`` the padded
      length, which must equal ``frames_range[1]``.
    frames_skip: extra window for ``fixed_ordered``.
    process_index: this host's index.
    process_count: number of hosts.
    augment: applied to each sequence (`augment_lib.Augment.pre_cut`
      before cutting, the `Augment` itself after), with randomness drawn
      from ``(sampler.seed, step, row of the global batch)``; None or an
      empty `augment_lib.Augment`: no augmentation.
    frames_range: (min, max) frames per sequence of ``unfixed_unordered``.
    tracklet_lengths: tracklet lengths of ``tracklet`` (each divides
      ``num_frames``).
    tracklet_probs: their probabilities.
    cut: cut the frames' width (``config.data.cut_width``).
  """
  source: GaitSource
  sampler: sampling.PKSampler
  frame_sampler: str = 'fixed_unordered'
  num_frames: int = 30
  frames_skip: int = 0
  process_index: int = 0
  process_count: int = 1
  augment: augment_lib.Augment | None = None
  frames_range: tuple[int, int] | None = None
  tracklet_lengths: tuple[int, ...] = sampling.TRACKLET_LENGTHS
  tracklet_probs: tuple[float, ...] = sampling.TRACKLET_PROBS
  cut: bool = True

  def __post_init__(self):
    transforms.check_cut(self.cut)
    if self.frame_sampler not in sampling.TRAIN_SAMPLERS:
      raise ValueError(
          f'data.frame_sampler={self.frame_sampler!r} cannot build training '
          f'batches; use one of {", ".join(sampling.TRAIN_SAMPLERS)}.')
    if self.frame_sampler == 'unfixed_unordered':
      self.frames_range = sampling.check_frames_range(self.frames_range)
      if self.num_frames != self.frames_range[1]:
        raise ValueError(
            f'data.num_frames={self.num_frames} must equal the largest '
            f'frame count of data.frames_range={self.frames_range} (the '
            'padded length of unfixed_unordered batches).')
    if self.frame_sampler == 'tracklet':
      self.tracklet_lengths, self.tracklet_probs = sampling.check_tracklets(
          self.num_frames, self.tracklet_lengths, self.tracklet_probs)
    # Fails early if the global batch does not split evenly over hosts.
    sampling.host_slice(self.sampler.batch_size, self.process_index,
                        self.process_count)

  @classmethod
  def from_config(cls, data_config, source: GaitSource,
                  sampler: sampling.PKSampler, process_index: int = 0,
                  process_count: int = 1) -> 'TrainBatchLoader':
    """The loader of ``config.data`` (sampler, frames, augmentation).

    Args:
      data_config: ``config.data`` (``gait_jax.config`` schema).
      source: the training split.
      sampler: the global P×K sampler.
      process_index: this host's index.
      process_count: number of hosts.

    Returns:
      The loader, validated.
    """
    return cls(source, sampler, frame_sampler=data_config.frame_sampler,
               num_frames=data_config.num_frames,
               frames_skip=data_config.frames_skip,
               process_index=process_index, process_count=process_count,
               augment=augment_lib.from_config(data_config.augment),
               frames_range=tuple(data_config.frames_range),
               tracklet_lengths=tuple(data_config.get(
                   'tracklet_lengths', sampling.TRACKLET_LENGTHS)),
               tracklet_probs=tuple(data_config.get(
                   'tracklet_probs', sampling.TRACKLET_PROBS)),
               cut=data_config.get('cut_width', True))

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    batch = self.sampler(step)
    part = sampling.host_slice(self.sampler.batch_size, self.process_index,
                               self.process_count)
    indices = batch.indices[part]
    sequences = self.source.frames_many(indices)
    height, width = sequences[0].shape[1:]
    width = transforms.model_frames(np.zeros((1, width), np.uint8),
                                    self.cut).shape[-1]
    sils = np.zeros((len(indices), self.num_frames, height, width), np.uint8)
    mask = np.zeros(sils.shape[:2], bool)  # [b, S]
    seed = self.sampler.seed
    for row, frames in enumerate(sequences):
      position = part.start + row  # The row in the global batch.
      rng = sampling.frame_rng(seed, step, position)
      chosen = sampling.sample_frames(rng, len(frames), self.frame_sampler,
                                      self.num_frames, self.frames_skip,
                                      self.frames_range,
                                      self.tracklet_lengths,
                                      self.tracklet_probs)  # [F]
      seq = frames[chosen]  # [F, 64, 64]
      if self.augment:
        seq = self.augment.pre_cut(seq, seed, step, position)
      seq = transforms.model_frames(seq, self.cut)  # [F, 64, 44 or 64]
      if self.augment:
        seq = self.augment(seq, seed, step, position)
      sils[row, :len(seq)] = seq  # Zero frames after F (unfixed_unordered).
      mask[row, :len(seq)] = True
    return {
        'step': np.int64(step),
        'sils': sils,  # uint8 [b, S, 64, 44 or 64]
        'labels': batch.labels[part],  # int32 [b]
        'mask': mask,  # bool [b, S], False on padding frames
    }


def train_iterator(loader: TrainBatchLoader, start_step: int, stop_step: int,
                   *, workers: int = 0,
                   prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Batches for steps ``start_step .. stop_step - 1``, in order.

  Args:
    loader: builds one host batch from a step number.
    start_step: first step (the resumed step).
    stop_step: one past the last step.
    workers: grain worker processes (0: load in threads of this process).
    prefetch: batches buffered per worker / prefetched by threads.

  Returns:
    An iterator of host batches (dicts of NumPy arrays).
  """
  dataset = grain.MapDataset.range(start_step, stop_step).map(loader)
  if workers > 0:
    return iter(dataset.to_iter_dataset().mp_prefetch(
        grain.MultiprocessingOptions(num_workers=workers,
                                     per_worker_buffer_size=prefetch)))
  return iter(dataset.to_iter_dataset(
      grain.ReadOptions(num_threads=max(1, prefetch),
                        prefetch_buffer_size=max(1, prefetch))))


def bucket_length(length: int, buckets: Sequence[int]) -> int:
  """Smallest bucket >= length; past the last bucket, a multiple of it."""
  for b in buckets:
    if length <= b:
      return int(b)
  last = int(buckets[-1])
  return -(-length // last) * last


@dataclasses.dataclass(frozen=True)
class EvalBatch:
  """A padded batch of whole test sequences.

  Attributes:
    indices: [B] record indices (-1 for filler rows added to fill the batch).
    sils: uint8 [B, L, 64, 44] frames, zero after each sequence's end.
    mask: bool [B, L], True on real frames.
  """
  indices: np.ndarray
  sils: np.ndarray
  mask: np.ndarray


def eval_plan(source: GaitSource, *, batch_size: int,
              buckets: Sequence[int] = (32, 64, 128, 256),
              frame_limit: int | None = None,
              multiple_of: int = 1) -> Iterator[tuple[np.ndarray, int]]:
  """The batches of `eval_batches` without their frames.

  Args: as `eval_batches`.

  Yields:
    ``(indices, length)``: [B] record indices (-1 for filler rows) and the
    padded length of one batch; together the batches cover every sequence
    once, each batch holding sequences of a single bucket length.
  """
  batch_size = -(-batch_size // multiple_of) * multiple_of
  lengths = _limited(source.lengths, frame_limit)
  order = np.argsort(lengths, kind='stable')
  padded = np.array([bucket_length(int(l), buckets) for l in lengths[order]])
  start = 0
  while start < len(order):
    stop = start
    while (stop < len(order) and stop - start < batch_size
           and padded[stop] == padded[start]):
      stop += 1
    indices = np.full((batch_size,), -1, np.int64)
    indices[:stop - start] = order[start:stop]
    yield indices, int(padded[start])
    start = stop


def _limited(lengths: np.ndarray, frame_limit: int | None) -> np.ndarray:
  return np.minimum(lengths, frame_limit) if frame_limit else lengths


def eval_frame_shape(source: GaitSource, cut: bool = True
                     ) -> tuple[int, int]:
  """(H, W) of the model's input frames (after the width cut if ``cut``)."""
  frames = source.frames(0)
  return tuple(transforms.model_frames(frames[:1], cut).shape[1:])


def eval_mask(source: GaitSource, indices: np.ndarray, length: int,
              frame_limit: int | None = None) -> np.ndarray:
  """bool [len(indices), length]: True on real frames; a filler row (index
  -1) has one (zero) frame."""
  mask = np.zeros((len(indices), length), bool)
  real = indices >= 0
  mask[~real, 0] = True
  counts = _limited(source.lengths[indices[real]], frame_limit)
  mask[np.flatnonzero(real)] = np.arange(length)[None] < counts[:, None]
  return mask


def eval_frames(source: GaitSource, indices: np.ndarray, length: int,
                frame_shape: tuple[int, int],
                frame_limit: int | None = None,
                cut: bool = True) -> np.ndarray:
  """uint8 [len(indices), length, H, W] frames of some rows of a batch,
  zero after each sequence's end and on filler rows (index -1); only the
  real rows are read; the width is cut if ``cut``."""
  sils = np.zeros((len(indices), length) + tuple(frame_shape), np.uint8)
  rows = np.flatnonzero(indices >= 0)
  if rows.size:
    for row, seq in zip(rows, source.frames_many(indices[rows])):
      seq = seq[:frame_limit] if frame_limit else seq
      sils[row, :len(seq)] = transforms.model_frames(seq, cut)
  return sils


def eval_batches(source: GaitSource, *, batch_size: int,
                 buckets: Sequence[int] = (32, 64, 128, 256),
                 frame_limit: int | None = None,
                 multiple_of: int = 1,
                 cut: bool = True) -> Iterator[EvalBatch]:
  """Length-bucketed, padded, masked batches covering every test sequence once.

  Args:
    source: the split to embed.
    batch_size: sequences per batch (rounded up to ``multiple_of``).
    buckets: padded lengths; a longer sequence pads to a multiple of the last.
    frame_limit: keep only the first ``frame_limit`` frames (OpenGait's
      ``frames_all_limit``), or None for all.
    multiple_of: batch rows are a multiple of this (the device count).
    cut: cut the frames' width (``config.data.cut_width``).

  Yields:
    ``EvalBatch`` objects; filler rows have index -1 and one zero frame.
  """
  shape = eval_frame_shape(source, cut) if len(source) else (0, 0)
  for indices, length in eval_plan(source, batch_size=batch_size,
                                   buckets=buckets, frame_limit=frame_limit,
                                   multiple_of=multiple_of):
    yield EvalBatch(
        indices=indices,
        sils=eval_frames(source, indices, length, shape, frame_limit, cut),
        mask=eval_mask(source, indices, length, frame_limit))
