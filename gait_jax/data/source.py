"""Random-access view of a gait dataset written by ``data_prep``.

A dataset is a TFDS directory (``<data_dir>/<name>/<version>``) in
``array_record`` format with splits ``train`` and ``test``; each record holds
``frames`` uint8 [T, 64, 64], ``subject``, ``type``, ``view`` and ``length``
(see docs/design.md). Records are stored in key-hash order, so the source keeps
its own index of the metadata of every record, cached as JSON beside the
shards after the first read.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Sequence

import numpy as np

INDEX_FIELDS = ('subject', 'type', 'view', 'length')


def _as_str(value: Any) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def open_split(dataset_dir: str, split: str):
  """The TFDS random-access data source of one split (no TensorFlow).

  Args:
    dataset_dir: a TFDS dataset directory written by ``data_prep``.
    split: split name, e.g. ``'train'``.

  Returns:
    A data source: ``len(src)``, ``src[i]`` and ``src.__getitems__(idx)``
    give dicts with frames (uint8 [T, 64, 64]), subject/type/view (bytes)
    and length (int).
  """
  return _builder(dataset_dir, split).as_data_source(split=split)


def _builder(dataset_dir: str, split: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not os.path.exists(os.path.join(dataset_dir, 'dataset_info.json')):
    raise FileNotFoundError(
        f'{dataset_dir} is not a finished gait dataset (no '
        'dataset_info.json). Build one with data_prep first.')
  builder = tfds.builder_from_directory(dataset_dir)
  if split not in builder.info.splits:
    raise ValueError(f'Dataset {dataset_dir} has no split {split!r}; it has '
                     f'{sorted(builder.info.splits.keys())}.')
  return builder


def read_index(dataset_dir: str, split: str, *,
               chunk: int = 2048) -> list[dict[str, Any]]:
  """Subject/type/view/length of every record, in record order.

  Frames are not decompressed (``SkipDecoding``), which is several times
  faster than reading whole records.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  source = _builder(dataset_dir, split).as_data_source(
      split=split, decoders={'frames': tfds.decode.SkipDecoding()})
  index = []
  for start in tqdm(range(0, len(source), chunk), desc=f'index {split}',
                    unit='chunk', leave=False, disable=len(source) <= chunk):
    stop = min(start + chunk, len(source))
    for record in source.__getitems__(list(range(start, stop))):
      index.append({field: _as_str(record[field]) for field in INDEX_FIELDS[:3]}
                   | {'length': int(record['length'])})
  return index


def read_metadata(dataset_dir: str) -> dict[str, Any]:
  """The dataset-level metadata (protocol, views, types, partition, report)."""
  path = os.path.join(dataset_dir, 'metadata.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {dataset_dir} was not written '
                            'by data_prep or is incomplete.')
  with open(path) as f:
    return json.load(f)


class GaitSource:
  """Random access to one split of a gait dataset.

  Attributes:
    dataset_dir: the TFDS dataset directory.
    split: ``'train'`` or ``'test'``.
    subjects, types, views: [N] arrays of str, in record order.
    lengths: [N] int array of frame counts.
    metadata: the dataset-level metadata dict.
  """

  def __init__(self, dataset_dir: str, split: str):
    self.dataset_dir = dataset_dir
    self.split = split
    self.metadata = read_metadata(dataset_dir)
    self._source = None  # Opened lazily, so the object pickles cheaply.
    index = self._load_index()
    self.subjects = np.array([r['subject'] for r in index], dtype=object)
    self.types = np.array([r['type'] for r in index], dtype=object)
    self.views = np.array([r['view'] for r in index], dtype=object)
    self.lengths = np.array([r['length'] for r in index], dtype=np.int64)
    self._records = np.arange(len(index))  # Position → record in the shards.

  # -- index ----------------------------------------------------------------
  def _index_path(self) -> str:
    return os.path.join(self.dataset_dir, f'gait_index-{self.split}.json')

  def _load_index(self) -> list[dict[str, Any]]:
    path = self._index_path()
    if os.path.exists(path):
      with open(path) as f:
        index = json.load(f)
      if len(index) == len(self.source):
        return index
    index = self._build_index()
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
      json.dump(index, f)
    os.replace(tmp, path)  # Atomic: concurrent readers never see half a file.
    return index

  def _build_index(self) -> list[dict[str, Any]]:
    return read_index(self.dataset_dir, self.split)

  # -- access ---------------------------------------------------------------
  @property
  def source(self):
    if self._source is None:
      self._source = open_split(self.dataset_dir, self.split)
    return self._source

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_source'] = None
    return state

  def __len__(self) -> int:
    return len(self.lengths)

  def frames(self, i: int) -> np.ndarray:
    """uint8 [T, 64, 64] frames of record ``i``."""
    return np.asarray(self.source[int(self._records[i])]['frames'])

  def frames_many(self, indices: Sequence[int]) -> list[np.ndarray]:
    """Frames of several records (one batched read)."""
    records = self.source.__getitems__(
        [int(self._records[i]) for i in indices])
    return [np.asarray(r['frames']) for r in records]

  def subset(self, indices: Sequence[int]) -> 'GaitSource':
    """A view of some of this source's records (positions ``indices``)."""
    view = copy.copy(self)
    indices = np.asarray(indices, np.int64)
    for name in ('subjects', 'types', 'views', 'lengths', '_records'):
      setattr(view, name, getattr(self, name)[indices])
    return view

  def subject_indices(self, subjects: Sequence[str]) -> list[np.ndarray]:
    """Record indices of each subject in ``subjects`` (in that order)."""
    order = np.argsort(self.subjects, kind='stable')
    by_subject: dict[str, list[int]] = {}
    for i in order:
      by_subject.setdefault(self.subjects[i], []).append(int(i))
    return [np.array(by_subject.get(s, []), np.int64) for s in subjects]

  def train_classes(self) -> list[str]:
    """Sorted subjects of this split: class ``c`` is ``train_classes()[c]``."""
    return sorted(set(self.subjects.tolist()))
