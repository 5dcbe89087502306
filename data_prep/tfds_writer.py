"""Writes and reads gait datasets as TFDS `array_record` directories.

Every gait dataset of the project (the synthetic one, CASIA-B, OUMVLP) is a
TFDS dataset directory `<data_dir>/<name>/<version>/` with one record per
silhouette sequence:

  frames   Tensor(shape=(None, 64, 64), dtype=uint8, encoding='zlib')
  subject  Text     e.g. '001'
  type     Text     e.g. 'nm-01' (CASIA-B) or '00' (OUMVLP)
  view     Text     e.g. '090'
  length   Scalar(int32), the number of frames T

and dataset-level metadata (a `tfds.core.MetadataDict`: protocol, views,
types, train/test subjects, report). No TensorFlow is needed: the builder is
a `GeneratorBasedBuilder` created on the fly for the requested name, and the
dataset is read back through `as_data_source()` (random access).

Typical use:

  def train_examples():
    for key, seq in ...:
      yield key, dict(frames=seq, subject='001', type='nm-01', view='090',
                      length=len(seq))

  dataset_dir = write_gait_dataset(
      'my_gait', data_dir, {'train': train_examples, 'test': test_examples},
      metadata=dict(protocol='casia_b', views=[...], types=[...],
                    train_subjects=[...], test_subjects=[...], report={}))
  source = open_gait_source(dataset_dir, 'train')  # source[i] -> dict
  index = read_index(dataset_dir, 'train')  # metadata of every record

Records are stored in the order of a hash of their example key, not in
generation order; `read_index` gives the record order. Examples are
serialised deterministically, so writing the same examples again gives
byte-identical shards (and the other files hold no timestamps).

`frames` may also be handed over already encoded, as
`EncodedFrames(zlib.compress(frames.tobytes()), frames.shape)`: the bytes go
into the record as they are (what the 'zlib' Tensor encoding would have
written), so a caller that compresses in parallel worker processes leaves
the writer only the appending (see `data_prep.convert`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import types
from typing import Any

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils
import tqdm

from data_prep import gait_records
from gait_jax.data import source as source_lib

# The record format (see `data_prep.gait_records`), exported here too.
FRAME_SIZE = gait_records.FRAME_SIZE
TEXT_KEYS = gait_records.TEXT_KEYS
EXAMPLE_KEYS = gait_records.EXAMPLE_KEYS
EncodedFrames = gait_records.EncodedFrames
InvalidExampleError = gait_records.InvalidExampleError
gait_features = gait_records.gait_features
validate_example = gait_records.validate_example
# Metadata keys that describe the result of a build rather than its input;
# they are ignored when deciding whether an existing dataset can be reused.
RESULT_METADATA_KEYS = ('report',)

SplitExamples = (
    Callable[[], Iterable[tuple[str, dict[str, Any]]]]
    | Iterable[tuple[str, dict[str, Any]]]
)


class DatasetExistsError(ValueError):
  """A finished dataset with a different configuration is in the way."""


def _jsonable(metadata: Mapping[str, Any]) -> dict[str, Any]:
  """Returns `metadata` after a JSON round trip (tuples become lists)."""
  try:
    return json.loads(json.dumps(dict(metadata)))
  except TypeError as e:
    raise ValueError(f'metadata must be JSON-serialisable: {e}') from e


def _check_name(name: str, version: str) -> None:
  if not re.fullmatch(r'[a-z][a-z0-9_]*', name):
    raise ValueError(
        f'dataset name {name!r} must be snake_case: lowercase letters, '
        'digits and underscores, starting with a letter')
  if not re.fullmatch(r'\d+\.\d+\.\d+', version):
    raise ValueError(f'version {version!r} must look like "1.0.0"')


@contextlib.contextmanager
def _tfds_progress_bars_off() -> Iterator[None]:
  """Hides TFDS's own nested progress bars (ours replace them)."""
  previous = getattr(tqdm_utils, '_active', True)
  tfds.disable_progress_bar()
  try:
    yield
  finally:
    tfds.display_progress_bar(previous)


def _make_builder_class(
    name: str,
    version: str,
    description: str,
    frame_size: int,
    split_examples: Mapping[str, SplitExamples],
    metadata: Mapping[str, Any],
    counts: dict[str, int],
) -> type[tfds.core.GeneratorBasedBuilder]:
  """Creates an unregistered `GeneratorBasedBuilder` subclass for `name`."""

  def _info(self) -> tfds.core.DatasetInfo:
    # `dataset_info_from_configs()` needs the builder's package files, which a
    # builder made at run time does not have; build the info directly.
    return tfds.core.DatasetInfo(
        builder=self,
        description=description,
        features=gait_records.accepting_encoded_frames(
            gait_features(frame_size)),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del self, dl_manager  # Unused: nothing to download.
    return {
        split: _validated(split, source, frame_size, name, counts)
        for split, source in split_examples.items()
    }

  def _generate_examples(self):  # Required abstract method; unused.
    raise NotImplementedError

  def _download_and_prepare(self, dl_manager, download_config=None):
    tfds.core.GeneratorBasedBuilder._download_and_prepare(  # pylint: disable=protected-access
        self, dl_manager=dl_manager, download_config=download_config)
    # Read the metadata only now, so generators may fill in their report.
    self.info.metadata.update(_jsonable(metadata))

  def body(ns):
    ns.update(
        name=name,
        VERSION=tfds.core.Version(version),
        RELEASE_NOTES={version: description or 'Initial release.'},
        _info=_info,
        _split_generators=_split_generators,
        _generate_examples=_generate_examples,
        _download_and_prepare=_download_and_prepare,
    )

  # No `__module__` of this file in the namespace on purpose: TFDS would then
  # look for package resources (checksums, README) next to it.
  class_name = ''.join(p.title() for p in name.split('_')) + 'GaitBuilder'
  return types.new_class(
      class_name,
      (tfds.core.GeneratorBasedBuilder,),
      {'skip_registration': True},
      body,
  )


def _validated(
    split: str,
    source: SplitExamples,
    frame_size: int,
    name: str,
    counts: dict[str, int],
) -> Iterator[tuple[str, dict[str, Any]]]:
  """Yields the validated examples of one split under a progress bar."""
  examples = source() if callable(source) else source
  total = len(examples) if hasattr(examples, '__len__') else None
  seen = set()
  bar = tqdm.tqdm(
      examples, total=total, desc=f'Writing {name}/{split}', unit='seq',
      dynamic_ncols=True, mininterval=1.0)
  with bar:
    for item in bar:
      try:
        key, example = item
      except (TypeError, ValueError) as e:
        raise InvalidExampleError(
            f'split {split!r} yielded {type(item).__name__}, expected '
            '(key, example) pairs') from e
      if not isinstance(key, (str, int)) or isinstance(key, bool):
        raise InvalidExampleError(
            f'split {split!r}: example key {key!r} must be a str or int')
      if key in seen:
        raise InvalidExampleError(
            f'split {split!r}: example key {key!r} occurs twice')
      seen.add(key)
      yield key, validate_example(key, example, split=split,
                                  frame_size=frame_size)
  if not seen:
    raise InvalidExampleError(f'split {split!r} has no examples')
  counts[split] = len(seen)


def _check_reusable(
    dataset_dir: str,
    split_names: Iterable[str],
    metadata: Mapping[str, Any],
) -> None:
  """Raises DatasetExistsError unless the existing dataset matches."""
  stored = read_gait_metadata(dataset_dir)
  wanted = _jsonable(metadata)
  keys = (set(stored) | set(wanted)) - set(RESULT_METADATA_KEYS)
  differing = sorted(k for k in keys if stored.get(k) != wanted.get(k))
  builder = tfds.builder_from_directory(dataset_dir)
  stored_splits = sorted(builder.info.splits.keys())
  if stored_splits != sorted(split_names):
    differing.append(f'splits {stored_splits} != {sorted(split_names)}')
  if differing:
    raise DatasetExistsError(
        f'A different dataset already exists at {dataset_dir} (differs in: '
        f'{", ".join(differing)}). Choose another data_dir (or version), or '
        'delete that directory to rebuild it.')


def _remove_unfinished(name_dir: str, version: str) -> None:
  """Deletes TFDS's `incomplete.*_<version>` dirs left by a killed writer.

  TFDS writes into such a directory and renames it when done, so one that
  exists while no finished dataset does is the remains of an interrupted
  run (two writers into the same directory at once are not supported).
  """
  if not os.path.isdir(name_dir):
    return
  stale = [e.path for e in os.scandir(name_dir)
           if e.is_dir() and e.name.startswith('incomplete.')
           and e.name.endswith('_' + version)]
  for path in stale:
    shutil.rmtree(path)
  if stale:
    print(f'Removed {len(stale)} unfinished shard directory(ies) of an '
          f'interrupted run: {", ".join(sorted(stale))}')


def write_gait_dataset(
    name: str,
    data_dir: str,
    split_examples: Mapping[str, SplitExamples],
    metadata: Mapping[str, Any],
    *,
    version: str = '1.0.0',
    description: str = '',
    frame_size: int = FRAME_SIZE,
) -> str:
  """Writes a gait dataset as a TFDS array_record directory.

  If a finished dataset already exists at `<data_dir>/<name>/<version>` and
  its metadata equals `metadata` (ignoring the `report` key) and it has the
  same splits, it is returned without calling the example sources.

  Args:
    name: dataset name (snake_case), e.g. 'casia_b'.
    data_dir: root directory; the dataset goes to `<data_dir>/<name>/<version>`.
    split_examples: split name -> either a callable returning an iterable of
      `(key, example)` pairs, or such an iterable. Keys are unique str or int;
      examples are dicts with keys frames (uint8 [T, 64, 64], T >= 1),
      subject, type, view (non-empty str) and length (== T).
    metadata: JSON-serialisable dataset metadata (protocol, views, types,
      train_subjects, test_subjects, report). It is read after all examples
      are generated, so a generator may still update it (e.g. the report).
    version: dataset version 'X.Y.Z'.
    description: free-text description stored in the dataset info.
    frame_size: frame height and width.

  Returns:
    The dataset directory `<data_dir>/<name>/<version>`.

  Raises:
    InvalidExampleError: an example breaks the record format; the message
      names the split, the example key and the offending feature.
    DatasetExistsError: a different dataset is already at the destination.
  """
  _check_name(name, version)
  if not split_examples:
    raise ValueError('split_examples is empty: give at least one split')
  _jsonable(metadata)  # Fail early on metadata that cannot be stored.
  dataset_dir = os.path.join(os.fspath(data_dir), name, version)
  if os.path.exists(os.path.join(dataset_dir, 'dataset_info.json')):
    _check_reusable(dataset_dir, split_examples.keys(), metadata)
    print(f'Reusing gait dataset {dataset_dir}')
    return dataset_dir

  _remove_unfinished(os.path.join(os.fspath(data_dir), name), version)
  counts: dict[str, int] = {}
  builder_cls = _make_builder_class(
      name, version, description, frame_size, split_examples, metadata,
      counts)
  builder = builder_cls(data_dir=os.fspath(data_dir),
                        file_format='array_record')
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as download_dir:
    with _tfds_progress_bars_off(), gait_records.deterministic_serialization():
      builder.download_and_prepare(download_dir=download_dir)
  size = sum(e.stat().st_size for e in os.scandir(dataset_dir))
  summary = ', '.join(f'{n} {s}' for s, n in counts.items())
  print(f'Wrote {dataset_dir}: {summary} sequences, {size / 2**20:.1f} MiB '
        f'in {time.perf_counter() - start:.1f} s')
  return dataset_dir


def read_gait_metadata(dataset_dir: str) -> dict[str, Any]:
  """Returns the dataset-level metadata of a gait dataset as a plain dict."""
  return source_lib.read_metadata(dataset_dir)


def open_gait_source(dataset_dir: str, split: str):
  """The random-access TFDS data source of one split (see `open_split`)."""
  return source_lib.open_split(dataset_dir, split)


def read_index(dataset_dir: str, split: str, *,
               chunk: int = 4096) -> list[dict[str, Any]]:
  """subject/type/view/length of every record in record order, frames
  not decoded (see `gait_jax.data.source.read_index`)."""
  return source_lib.read_index(dataset_dir, split, chunk=chunk)
