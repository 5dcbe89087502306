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
  with pytest.raises(ValueError,
                     match="'tfds', 'synthetic', 'synthetic_wild'"):
    prepare.prepare_dataset(_config(source='casia'))
  with pytest.raises(FileNotFoundError, match='nowhere'):
    prepare.prepare_dataset(_config(dataset_dir=str(tmp_path / 'nowhere')))


def test_synthetic_wild_is_built_with_its_probe_set(tmp_path):
  wild = {'num_subjects': 4, 'num_train_subjects': 2, 'min_sequences': 2,
          'max_sequences': 3, 'min_frames': 10, 'max_frames': 12,
          'mean_frames': 11.0, 'num_cameras': 3, 'seed': 0,
          'identity_spread': 1.0, 'wild': {'occlusion': 0.5}}
  config = _config(source='synthetic_wild', data_dir=str(tmp_path),
                   synthetic_wild=wild)
  out = prepare.prepare_dataset(config)
  meta = tfds_writer.read_gait_metadata(out)
  assert meta['train_subjects'] == ['0000', '0001']
  assert meta['protocol'] == 'gait3d'
  # One probe per test subject, also handed to the protocol as its option.
  probes = meta['protocol_options']['probe_set']
  assert sorted(p.split('-')[0] for p in probes) == ['0002', '0003']
  assert prepare.prepare_dataset(_config(
      source='synthetic_wild', data_dir=str(tmp_path),
      synthetic_wild=wild)) == out
