"""Damaged or malformed dataset files raise errors that name the file."""

import json
import os
import shutil

import pytest

from gait_jax.data import source as source_lib


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path):
  """A private copy of the tiny dataset (tests damage its files)."""
  out = str(tmp_path / 'tiny_gait' / '1.0.0')
  shutil.copytree(tiny_dataset, out,
                  ignore=shutil.ignore_patterns('gait_index-*'))
  return out


def _shard(dataset_dir, split='train'):
  names = [n for n in os.listdir(dataset_dir)
           if f'-{split}.array_record' in n]
  assert len(names) == 1, names
  return os.path.join(dataset_dir, names[0])


def test_garbled_shard_names_file_and_record(dataset_copy):
  shard = _shard(dataset_copy)
  size = os.path.getsize(shard)
  with open(shard, 'r+b') as f:
    f.seek(size // 3)  # Inside the record data (before the index).
    f.write(b'\xa5' * 64)
  with pytest.raises(source_lib.DatasetFileError) as e:
    source_lib.GaitSource(dataset_copy, 'train')
  assert e.value.path == shard and shard in str(e.value)
  assert e.value.record is not None and 'record' in str(e.value)
  # The test split is intact and still readable.
  test = source_lib.GaitSource(dataset_copy, 'test')
  assert test.frames(0).shape[1:] == (64, 64)


@pytest.mark.parametrize('keep', [0.5, 0.01])
def test_truncated_shard_names_file(dataset_copy, keep):
  source = source_lib.GaitSource(dataset_copy, 'train')  # Index still good.
  shard = _shard(dataset_copy)
  with open(shard, 'r+b') as f:
    f.truncate(int(os.path.getsize(shard) * keep))
  with pytest.raises(source_lib.DatasetFileError, match='array_record'):
    source.frames_many(range(len(source)))
  with pytest.raises(source_lib.DatasetFileError) as e:
    source_lib.read_index(dataset_copy, 'train')
  assert e.value.path == shard


def test_malformed_metadata_json(dataset_copy):
  path = os.path.join(dataset_copy, 'metadata.json')
  with open(path, 'w') as f:
    f.write('{"protocol": "casia_b",')
  with pytest.raises(source_lib.DatasetFileError,
                     match='metadata.json: malformed JSON') as e:
    source_lib.read_metadata(dataset_copy)
  assert e.value.path == path
  assert isinstance(e.value.__cause__, json.JSONDecodeError)
  with open(path, 'w') as f:
    f.write('[1, 2]')
  with pytest.raises(source_lib.DatasetFileError, match='JSON object'):
    source_lib.GaitSource(dataset_copy, 'test')


def test_malformed_features_json(dataset_copy):
  with open(os.path.join(dataset_copy, 'features.json'), 'w') as f:
    f.write('{')
  with pytest.raises(source_lib.DatasetFileError, match='features.json'):
    source_lib.open_split(dataset_copy, 'test')


def test_damaged_index_cache_is_rebuilt(dataset_copy):
  first = source_lib.GaitSource(dataset_copy, 'test')
  with open(os.path.join(dataset_copy, 'gait_index-test.json'), 'w') as f:
    f.write('[{"subj')
  again = source_lib.GaitSource(dataset_copy, 'test')
  assert list(again.subjects) == list(first.subjects)
