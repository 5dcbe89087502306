"""Tests for data_prep.prepare.prepare_dataset."""

import ml_collections
import pytest

from data_prep import prepare
from data_prep import tfds_writer


def _config(**data):
  return ml_collections.ConfigDict({'data': dict(
      {'source': 'tfds', 'dataset_dir': '', 'data_dir': '',
       'synthetic': {'num_subjects': 2, 'num_train_subjects': 1,
                     'views': ('000',), 'types': ('nm-01',),
                     'min_frames': 2, 'max_frames': 3}}, **data)})


def test_synthetic_is_built_then_reused(tmp_path):
  config = _config(source='synthetic', data_dir=str(tmp_path))
  out = prepare.prepare_dataset(config)
  assert config.data.dataset_dir == out
  assert tfds_writer.read_gait_metadata(out)['train_subjects'] == ['001']
  assert prepare.prepare_dataset(_config(
      source='synthetic', data_dir=str(tmp_path))) == out


def test_existing_dir_bad_source_and_missing_dir(tmp_path):
  assert prepare.prepare_dataset(_config(dataset_dir=str(tmp_path))) == str(
      tmp_path)
  with pytest.raises(ValueError, match="'tfds', 'synthetic'"):
    prepare.prepare_dataset(_config(source='casia'))
  with pytest.raises(FileNotFoundError, match='nowhere'):
    prepare.prepare_dataset(_config(dataset_dir=str(tmp_path / 'nowhere')))
