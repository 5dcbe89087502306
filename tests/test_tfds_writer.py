"""Tests for data_prep.tfds_writer: round trip, index, validation, reuse."""

import json
import os
import re

import numpy as np
import pytest

from data_prep import tfds_writer

METADATA = {
    'protocol': 'casia_b',
    'views': ['000', '090'],
    'types': ['nm-01', 'cl-01'],
    'train_subjects': ['001', '002'],
    'test_subjects': ['003'],
    'report': {'skipped': 0},
}


def _examples(subjects, seed=0):
  """Random binary sequences of varying length (T = 1 included)."""
  rng = np.random.default_rng(seed)
  out = []
  for s in subjects:
    for t in METADATA['types']:
      for v in METADATA['views']:
        n = int(rng.integers(1, 6))
        frames = (rng.random((n, 64, 64)) < 0.3).astype(np.uint8) * 255
        out.append((f'{s}-{t}-{v}', dict(frames=frames, subject=s, type=t,
                                          view=v, length=n)))
  out[0][1]['frames'] = out[0][1]['frames'][:1]  # one single-frame sequence
  out[0][1]['length'] = 1
  return out


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('data')
  train, test = _examples(['001', '002']), _examples(['003'], seed=1)
  dataset_dir = tfds_writer.write_gait_dataset(
      'tiny_gait', str(data_dir), {'train': lambda: iter(train),
                                   'test': test},
      METADATA, description='test data')
  return dataset_dir, {'train': train, 'test': test}


def test_layout_and_metadata(written):
  dataset_dir, _ = written
  assert dataset_dir.endswith(os.path.join('tiny_gait', '1.0.0'))
  names = os.listdir(dataset_dir)
  assert 'dataset_info.json' in names
  assert any('.array_record' in n for n in names)
  assert tfds_writer.read_gait_metadata(dataset_dir) == METADATA
  with open(os.path.join(dataset_dir, 'features.json')) as f:
    features = json.dumps(json.load(f))
  assert 'zlib' in features


@pytest.mark.parametrize('split', ['train', 'test'])
def test_round_trip_is_bit_exact(written, split):
  dataset_dir, examples = written
  source = tfds_writer.open_gait_source(dataset_dir, split)
  assert len(source) == len(examples[split])
  expected = {k: ex for k, ex in examples[split]}
  seen = set()
  for i in range(len(source)):
    rec = source[i]
    key = '-'.join(rec[k].decode() for k in ('subject', 'type', 'view'))
    ex = expected[key]
    assert rec['frames'].dtype == np.uint8
    np.testing.assert_array_equal(rec['frames'], ex['frames'])
    assert rec['length'] == ex['length'] == len(ex['frames'])
    seen.add(key)
  assert seen == set(expected)


@pytest.mark.parametrize('split', ['train', 'test'])
def test_read_index_matches_records(written, split):
  dataset_dir, _ = written
  source = tfds_writer.open_gait_source(dataset_dir, split)
  index = tfds_writer.read_index(dataset_dir, split, chunk=3)
  assert len(index) == len(source)
  for i, entry in enumerate(index):
    rec = source[i]
    assert entry == {'subject': rec['subject'].decode(),
                     'type': rec['type'].decode(),
                     'view': rec['view'].decode(),
                     'length': rec['length']}


def test_unknown_split_is_named(written):
  with pytest.raises(ValueError, match="'val'"):
    tfds_writer.open_gait_source(written[0], 'val')


def test_missing_dataset_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match='dataset_info.json'):
    tfds_writer.read_index(str(tmp_path), 'train')


def _good(**changes):
  ex = dict(frames=np.zeros((3, 64, 64), np.uint8), subject='001',
            type='nm-01', view='090', length=3)
  ex.update(changes)
  return ex


@pytest.mark.parametrize('example, needle', [
    (_good(frames=np.zeros((3, 64, 64), np.float32)), "'frames'.*uint8"),
    (_good(frames=np.zeros((3, 64, 44), np.uint8)), "'frames'.*shape"),
    (_good(frames=np.zeros((0, 64, 64), np.uint8), length=0), "'frames'"),
    (_good(frames=[[0]]), "'frames'.*numpy"),
    (_good(length=4), "'length'"),
    (_good(length=3.0), "'length'"),
    (_good(subject=''), "'subject'"),
    (_good(view=90), "'view'"),
])
def test_validation_names_key_and_example(example, needle):
  with pytest.raises(tfds_writer.InvalidExampleError) as e:
    tfds_writer.validate_example('bad-key', example, split='train')
  assert 'bad-key' in str(e.value)
  assert "'train'" in str(e.value)
  assert re.search(needle, str(e.value)), str(e.value)


def test_validation_missing_and_unknown_keys():
  ex = _good()
  del ex['view']
  ex['label'] = 1
  with pytest.raises(tfds_writer.InvalidExampleError, match="'view'.*'label'"):
    tfds_writer.validate_example('k', ex)


def test_bad_example_aborts_write_and_leaves_nothing(tmp_path):
  def bad():
    yield 'ok', _good()
    yield 'broken', _good(length=7)

  with pytest.raises(tfds_writer.InvalidExampleError, match="'broken'"):
    tfds_writer.write_gait_dataset('bad_gait', str(tmp_path),
                                   {'train': bad}, METADATA)
  assert not os.path.exists(tmp_path / 'bad_gait' / '1.0.0')
  # The same location can then be written.
  out = tfds_writer.write_gait_dataset(
      'bad_gait', str(tmp_path), {'train': [('ok', _good())]}, METADATA)
  assert len(tfds_writer.read_index(out, 'train')) == 1


def test_duplicate_keys_and_empty_split(tmp_path):
  with pytest.raises(tfds_writer.InvalidExampleError, match="'a' occurs"):
    tfds_writer.write_gait_dataset(
        'dup_gait', str(tmp_path),
        {'train': [('a', _good()), ('a', _good())]}, METADATA)
  with pytest.raises(tfds_writer.InvalidExampleError, match='no examples'):
    tfds_writer.write_gait_dataset('empty_gait', str(tmp_path),
                                   {'train': []}, METADATA)


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match='snake_case'):
    tfds_writer.write_gait_dataset('Bad-Name', str(tmp_path),
                                   {'train': []}, METADATA)
  with pytest.raises(ValueError, match='JSON'):
    tfds_writer.write_gait_dataset('gait', str(tmp_path),
                                   {'train': []}, {'x': object()})


def test_rewrite_reuses_or_refuses(tmp_path):
  def examples():
    return [('a', _good()), ('b', _good(subject='002'))]

  first = tfds_writer.write_gait_dataset(
      'reuse_gait', str(tmp_path), {'train': examples}, METADATA)
  mtime = os.path.getmtime(os.path.join(first, 'dataset_info.json'))

  def must_not_run():
    raise AssertionError('examples regenerated for a finished dataset')

  # Same metadata (the report may differ): reused, sources not called.
  again = tfds_writer.write_gait_dataset(
      'reuse_gait', str(tmp_path), {'train': must_not_run},
      dict(METADATA, report={'skipped': 5}))
  assert again == first
  assert os.path.getmtime(os.path.join(first, 'dataset_info.json')) == mtime
  # Different metadata or splits: a clear error.
  with pytest.raises(tfds_writer.DatasetExistsError,
                     match='views.*another data_dir'):
    tfds_writer.write_gait_dataset(
        'reuse_gait', str(tmp_path), {'train': must_not_run},
        dict(METADATA, views=['000']))
  with pytest.raises(tfds_writer.DatasetExistsError, match='splits'):
    tfds_writer.write_gait_dataset(
        'reuse_gait', str(tmp_path),
        {'train': must_not_run, 'test': must_not_run}, METADATA)


def test_report_filled_during_generation_is_stored(tmp_path):
  metadata = dict(METADATA, report={'seen': 0})

  def examples():
    for i in range(3):
      metadata['report']['seen'] += 1
      yield f'k{i}', _good()

  out = tfds_writer.write_gait_dataset('report_gait', str(tmp_path),
                                       {'train': examples}, metadata)
  assert tfds_writer.read_gait_metadata(out)['report'] == {'seen': 3}
