"""Random-access view of a gait dataset written by ``data_prep``.

A dataset is a TFDS directory (``<data_dir>/<name>/<version>``) in
``array_record`` format with splits ``train`` and ``test``; each record holds
``frames`` uint8 [T, 64, 64], ``subject``, ``type``, ``view`` and ``length``
(see docs/design.md). Records are stored in key-hash order, so the source keeps
its own index of the metadata of every record, cached as JSON beside the
shards after the first read. A damaged or malformed dataset file raises
``DatasetFileError`` naming the file (and, in a shard, the record).
"""

from __future__ import annotations

import bisect
import copy
import json
import logging
import os
from typing import Any, NoReturn, Sequence
import zlib

import numpy as np

INDEX_FIELDS = ('subject', 'type', 'view', 'length')
_DESCRIPTION_FILES = ('dataset_info.json', 'features.json')


class DatasetFileError(ValueError):
  """A file of a gait dataset is damaged or malformed.

  Attributes:
    path: the file.
    record: the index of the damaged record within the file (a shard), or
      None when unknown or not applicable.
  """

  def __init__(self, path: str, problem: str, record: int | None = None):
    where = path if record is None else f'{path}, record {record}'
    super().__init__(f'{where}: {problem}. The dataset file is damaged: '
                     'convert the dataset again (or restore the file).')
    self.path = path
    self.record = record


def _as_str(value: Any) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _load_json(path: str) -> Any:
  """The content of a JSON file; DatasetFileError names a malformed one."""
  try:
    with open(path, 'rb') as f:
      return json.loads(f.read())
  except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError included.
    raise DatasetFileError(path, f'malformed JSON ({err})') from err


def open_split(dataset_dir: str, split: str, *,
               decoders: dict[str, Any] | None = None) -> 'SplitRecords':
  """The random-access records of one split (no TensorFlow).

  Args:
    dataset_dir: a TFDS dataset directory written by ``data_prep``.
    split: split name, e.g. ``'train'``.
    decoders: TFDS decoders per feature (e.g. ``SkipDecoding`` for frames).

  Returns:
    A ``SplitRecords``: ``len(src)``, ``src[i]`` and ``src.__getitems__(idx)``
    give dicts with frames (uint8 [T, 64, 64]), subject/type/view (bytes)
    and length (int).
  """
  return SplitRecords(_builder(dataset_dir, split), split, decoders)


def _builder(dataset_dir: str, split: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  if not os.path.exists(os.path.join(dataset_dir, 'dataset_info.json')):
    raise FileNotFoundError(
        f'{dataset_dir} is not a finished gait dataset (no '
        'dataset_info.json). Build one with data_prep first.')
  for name in _DESCRIPTION_FILES:
    path = os.path.join(dataset_dir, name)
    if os.path.exists(path):
      _load_json(path)  # TFDS's own errors would not name the file.
  try:
    builder = tfds.builder_from_directory(dataset_dir)
  except (json_format.Error, KeyError, TypeError, ValueError) as err:
    raise DatasetFileError(
        os.path.join(dataset_dir, _DESCRIPTION_FILES[0]),
        f'not a valid TFDS dataset description together with '
        f'{_DESCRIPTION_FILES[1]} ({type(err).__name__}: {err})') from err
  if split not in builder.info.splits:
    raise ValueError(f'Dataset {dataset_dir} has no split {split!r}; it has '
                     f'{sorted(builder.info.splits.keys())}.')
  return builder


class SplitRecords:
  """The records of one split; a read that fails names its shard file.

  Reading goes through TFDS's ``array_record`` data source. A shard that is
  cut short, garbled or otherwise unreadable raises ``DatasetFileError``
  naming the shard and the record's index in it, instead of the reader's
  or decoder's own error (which names neither).
  """

  def __init__(self, builder, split: str,
               decoders: dict[str, Any] | None = None):
    from tensorflow_datasets.core import decode  # pylint: disable=g-import-not-at-top
    self._raw = builder.as_data_source(
        split=split, deserialize_method=decode.DeserializeMethod.RAW_BYTES)
    self._features = builder.info.features
    self._decoders = decoders
    info = builder.info.splits[split]
    self._paths = [os.fspath(p) for p in info.filepaths]
    self._starts = np.cumsum([0] + list(info.shard_lengths)).tolist()

  def __len__(self) -> int:
    return self._starts[-1]

  def locate(self, i: int) -> tuple[str, int]:
    """(shard file, index within it) of record ``i`` of the split."""
    shard = bisect.bisect_right(self._starts, i) - 1
    return self._paths[shard], i - self._starts[shard]

  def __getitem__(self, i: int) -> dict[str, Any]:
    return self.__getitems__([i])[0]

  def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
    keys = [int(k) for k in keys]
    bad = [k for k in keys if not 0 <= k < len(self)]
    if bad:
      raise IndexError(f'record indices {bad[:5]} out of range for a split '
                       f'of {len(self)} records')
    if not keys:
      return []
    try:
      records = self._raw.__getitems__(keys)
    except (RuntimeError, OSError, ValueError) as err:
      self._raise_for_first_unreadable(keys, err)
    return [self._decode(k, r) for k, r in zip(keys, records)]

  def _raise_for_first_unreadable(self, keys: Sequence[int],
                                  err: Exception) -> NoReturn:
    """Reads ``keys`` one by one to name the record a batch read failed on."""
    for k in keys:
      try:
        self._raw[k]
      except (RuntimeError, OSError, ValueError) as one:
        path, j = self.locate(k)
        raise DatasetFileError(path, f'cannot read the record ({one})',
                               j) from one
    shards = sorted({self.locate(k)[0] for k in keys})
    raise DatasetFileError(', '.join(shards),
                           f'cannot read records {keys[:5]} ({err})') from err

  def _decode(self, k: int, record: Any) -> dict[str, Any]:
    from google.protobuf import message  # pylint: disable=g-import-not-at-top
    if not isinstance(record, bytes) or not record:
      path, j = self.locate(k)
      raise DatasetFileError(path, 'the record is missing (the file is cut '
                             'short?)', j)
    try:
      return self._features.deserialize_example_np(record,
                                                   decoders=self._decoders)
    except (message.DecodeError, zlib.error, ValueError, TypeError) as err:
      path, j = self.locate(k)
      raise DatasetFileError(
          path, f'cannot decode the record ({type(err).__name__}: {err})',
          j) from err


def read_index(dataset_dir: str, split: str, *,
               chunk: int = 2048) -> list[dict[str, Any]]:
  """Subject/type/view/length of every record, in record order.

  Frames are not decompressed (``SkipDecoding``), which is several times
  faster than reading whole records.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  source = open_split(dataset_dir, split,
                      decoders={'frames': tfds.decode.SkipDecoding()})
  index = []
  for start in tqdm(range(0, len(source), chunk), desc=f'index {split}',
                    unit='chunk', leave=False, disable=len(source) <= chunk):
    stop = min(start + chunk, len(source))
    for record in source.__getitems__(list(range(start, stop))):
      index.append({field: _as_str(record[field]) for field in INDEX_FIELDS[:3]}
                   | {'length': int(record['length'])})
  return index


def read_metadata(dataset_dir: str) -> dict[str, Any]:
  """The dataset-level metadata (protocol, views, types, partition, report).

  Raises:
    FileNotFoundError: there is no ``metadata.json``.
    DatasetFileError: it is not a JSON object.
  """
  path = os.path.join(dataset_dir, 'metadata.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {dataset_dir} was not written '
                            'by data_prep or is incomplete.')
  metadata = _load_json(path)
  if not isinstance(metadata, dict):
    raise DatasetFileError(path, 'expected a JSON object, got '
                           f'{type(metadata).__name__}')
  return metadata


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
      try:
        index = _load_json(path)
      except DatasetFileError as err:
        # The index only caches what the shards hold: rebuild it.
        logging.warning('Rebuilding the record index: %s', err)
        index = None
      if isinstance(index, list) and len(index) == len(self.source):
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
