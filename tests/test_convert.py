"""End-to-end tests of data_prep.convert on small trees in the real layouts."""

import hashlib
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_prep import convert
from data_prep import partitions
from data_prep import png_gray
from data_prep import raw_sources
from data_prep import seq_cache
from data_prep import tfds_writer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def expected_frame(img):
  """Independent vectorised version of the pretreatment rule (or None)."""
  if img.astype(np.int64).sum() <= 10000:
    return None
  ys = np.nonzero(img)[0]
  crop = img[ys.min():ys.max() + 1]
  w = int(64 * crop.shape[1] / crop.shape[0])
  crop = cv2.resize(crop, (w, 64), interpolation=cv2.INTER_CUBIC)
  col = crop.astype(np.int64).sum(0)
  above = np.nonzero(np.cumsum(col) * 2 > col.sum())[0]
  if above.size == 0 or above[0] == 0:
    return None
  c = int(above[0])
  if c - 32 <= 0 or c + 32 >= crop.shape[1]:
    crop = np.hstack([np.zeros((64, 32), np.uint8), crop,
                      np.zeros((64, 32), np.uint8)])
    c += 32
  return crop[:, c - 32:c + 32]


def figure(x, phase):
  """A 320x240 walking stick figure with its centre near column x."""
  img = np.zeros((240, 320), np.uint8)
  dx = int(20 * np.sin(phase))
  cv2.circle(img, (x, 52), 11, 255, -1)
  cv2.rectangle(img, (x - 14, 64), (x + 14, 128), 255, -1)
  cv2.line(img, (x, 128), (x + dx, 205), 255, 8)
  cv2.line(img, (x, 128), (x - dx, 205), 255, 8)
  return img


def write_frames(folder, names_and_images):
  os.makedirs(folder, exist_ok=True)
  for name, img in names_and_images:
    cv2.imwrite(os.path.join(folder, name), img)


def make_casia_tree(root):
  """A CASIA-B tree with every kind of defect; returns key -> images."""
  images = {}
  for si, sid in enumerate(['001', '005', '075', '125']):
    for typ in ('nm-01', 'cl-01'):
      for view in ('000', '090'):
        key = f'{sid}-{typ}-{view}'
        imgs = [figure(20 + 70 * f + 9 * si, 0.6 * f) for f in range(5)]
        if key == '001-nm-01-000':
          imgs[2] = np.zeros_like(imgs[2])  # dark frame
        if key == '005-cl-01-090':
          imgs = [np.zeros_like(i) for i in imgs]  # nothing left
        if key == '075-nm-01-090':
          imgs[4] = np.zeros_like(imgs[4])
          imgs[4][20:220, 0] = 255  # x-centre at column 0
        folder = os.path.join(root, sid, typ, view)
        if key == '075-cl-01-000':
          os.makedirs(folder)  # empty sequence folder
          continue
        write_frames(folder, [(f'{key}-{f:03d}.png', im)
                              for f, im in enumerate(imgs)])
        images[key] = imgs
  seq = os.path.join(root, '001', 'nm-01', '090')
  with open(os.path.join(seq, '001-nm-01-090-005.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n truncated')  # corrupt PNG
  with open(os.path.join(seq, 'Thumbs.db'), 'wb') as f:
    f.write(b'\0' * 10)  # not a PNG
  with open(os.path.join(root, 'README.txt'), 'w') as f:
    f.write('CASIA-B')
  os.makedirs(os.path.join(root, '075', 'bg-01'))  # a type without views
  return images


def read_records(dataset_dir):
  out = {}
  for split in ('train', 'test'):
    src = tfds_writer.open_gait_source(dataset_dir, split)
    out[split] = [src[i] for i in range(len(src))]
  return out


def keyed(records):
  return {(r['subject'].decode(), r['type'].decode(), r['view'].decode()): r
          for rs in records.values() for r in rs}


def assert_same_records(a, b):
  assert a.keys() == b.keys()
  for split in a:
    assert len(a[split]) == len(b[split])
    for x, y in zip(a[split], b[split]):
      assert set(x) == set(y)
      for k in x:
        np.testing.assert_array_equal(x[k], y[k])


def test_casia_b_conversion(tmp_path):
  images = make_casia_tree(tmp_path / 'raw')
  ddir = convert.convert('casia_b', str(tmp_path / 'raw'),
                         str(tmp_path / 'out'), workers=2)
  records = read_records(ddir)
  assert len(records['train']) == 7 and len(records['test']) == 3
  by_key = keyed(records)
  for (sid, typ, view), rec in by_key.items():
    want = [expected_frame(i) for i in images[f'{sid}-{typ}-{view}']]
    want = np.stack([w for w in want if w is not None])
    assert rec['length'] == len(want) == rec['frames'].shape[0]
    np.testing.assert_array_equal(rec['frames'], want)
  assert by_key[('001', 'nm-01', '000')]['length'] == 4
  assert by_key[('075', 'nm-01', '090')]['length'] == 4

  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'casia_b' and meta['partition'] == 'casia_b'
  assert meta['views'] == ['000', '090']
  assert meta['types'] == ['cl-01', 'nm-01']
  assert meta['train_subjects'] == ['001', '005']
  assert meta['test_subjects'] == ['075']
  rep = meta['report']
  assert rep['frames_skipped'] == {'corrupt_image': 1, 'dark_frame': 6,
                                   'no_x_centre': 1}
  assert rep['sequences_skipped']['no_frame_left']['items'] == [
      '005-cl-01-090']
  assert rep['sequences_skipped']['empty_sequence']['items'] == [
      '075-cl-01-000']
  assert rep['files_ignored']['not_png']['items'] == [
      os.path.join('001', 'nm-01', '090', 'Thumbs.db')]
  assert rep['files_ignored']['unexpected_file']['items'] == ['README.txt']
  assert rep['files_ignored']['empty_dir']['items'] == [
      os.path.join('075', 'bg-01')]
  assert rep['subject_not_in_partition']['count'] == 4
  assert rep['sequences_written'] == {'train': 7, 'test': 3}
  assert rep['frames_written'] == sum(r['length'] for r in by_key.values())
  assert 'dark_frame' in convert.format_report(rep)


def test_rerun_and_restart_give_identical_records(tmp_path):
  make_casia_tree(tmp_path / 'raw')
  raw = str(tmp_path / 'raw')
  first = convert.convert('casia_b', raw, str(tmp_path / 'a'))
  files = sorted(os.listdir(first))
  before = {f: open(os.path.join(first, f), 'rb').read() for f in files}
  # A second run reuses everything and leaves the shards untouched.
  assert convert.convert('casia_b', raw, str(tmp_path / 'a')) == first
  for f in files:
    assert open(os.path.join(first, f), 'rb').read() == before[f]

  # A run stopped after 3 sequences, with a leftover temporary file, a
  # truncated cache entry and one with damaged frames, then restarted.
  cache = str(tmp_path / 'cache')
  with pytest.raises(convert.ConversionInterrupted):
    convert.convert('casia_b', raw, str(tmp_path / 'b'), workers=2,
                    cache_dir=cache, stop_after=3)
  cached = sorted(os.path.join(d, f) for d, _, fs in os.walk(cache)
                  for f in fs if f.endswith(seq_cache.SUFFIX))
  assert 3 <= len(cached) < 14
  assert not os.path.exists(os.path.join(tmp_path, 'b', 'casia_b'))
  with open(cached[0] + '.tmp999', 'wb') as f:
    f.write(b'partial')
  with open(cached[1], 'r+b') as f:
    f.truncate(20)
  with open(cached[2], 'r+b') as f:
    f.seek(-3, os.SEEK_END)
    f.write(b'\0\0\0')
  second = convert.convert('casia_b', raw, str(tmp_path / 'b'), workers=1,
                           cache_dir=cache)
  assert_same_records(read_records(first), read_records(second))
  assert (tfds_writer.read_gait_metadata(first)
          == tfds_writer.read_gait_metadata(second))
  # The shards themselves are the same bytes.
  shards = sorted(f for f in files if '.array_record' in f)
  assert shards
  for f in shards:
    assert open(os.path.join(second, f), 'rb').read() == before[f]


def test_encoded_frames_are_written_as_they_are(tmp_path, monkeypatch):
  """Cached (pre-compressed) frames give the records that arrays give."""
  rng = np.random.default_rng(1)
  seqs = {f'{i:03d}': (rng.random((int(rng.integers(1, 5)), 64, 64)) < 0.3
                       ).astype(np.uint8) * 255 for i in range(6)}
  meta = dict(protocol='casia_b', views=['000'], types=['nm-01'],
              train_subjects=sorted(seqs), test_subjects=[], report={})

  def examples(encode):
    return [(k, dict(frames=encode(v), subject=k, type='nm-01', view='000',
                     length=len(v))) for k, v in seqs.items()]

  backends = ['zlib'] + (['libdeflate'] if png_gray.deflate_module() else [])
  dirs = {'array': tfds_writer.write_gait_dataset(
      'enc', str(tmp_path / 'array'), {'train': examples(lambda v: v)}, meta)}
  for backend in backends:
    monkeypatch.setattr(seq_cache, 'COMPRESS', backend)
    dirs[backend] = tfds_writer.write_gait_dataset(
        'enc', str(tmp_path / backend), {'train': examples(
            lambda v: tfds_writer.EncodedFrames(
                seq_cache.compress(v.tobytes()), v.shape))}, meta)
  for ddir in dirs.values():
    src = tfds_writer.open_gait_source(ddir, 'train')
    got = {src[i]['subject'].decode(): src[i] for i in range(len(src))}
    assert got.keys() == seqs.keys()
    for k, v in seqs.items():
      np.testing.assert_array_equal(got[k]['frames'], v)
      assert got[k]['length'] == len(v)
  # With zlib, the cached bytes are exactly TFDS's own encoding.
  shards = [f for f in os.listdir(dirs['array']) if '.array_record' in f]
  for f in shards:
    assert (open(os.path.join(dirs['array'], f), 'rb').read()
            == open(os.path.join(dirs['zlib'], f), 'rb').read())
  bad = tfds_writer.EncodedFrames(b'x', (2, 64, 32))
  with pytest.raises(tfds_writer.InvalidExampleError, match='shape'):
    tfds_writer.write_gait_dataset(
        'enc', str(tmp_path / 'bad'), {'train': [('a', dict(
            frames=bad, subject='a', type='nm-01', view='000', length=2))]},
        meta)


def test_workers_import_no_heavy_modules():
  """The pool's entry point loads neither TFDS, TensorFlow, JAX nor absl."""
  code = ('import sys; from data_prep import convert, seq_cache; '
          'print(sorted({m.split(".")[0] for m in sys.modules}))')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True,
                       capture_output=True, text=True).stdout
  loaded = set(eval(out))  # pylint: disable=eval-used
  assert not loaded & {'tensorflow', 'tensorflow_datasets', 'jax', 'flax',
                       'absl', 'tqdm', 'gait_jax'}, loaded


def make_oumvlp_trees(root):
  """The distributed OUMVLP layout and its rearranged (symlinked) form."""
  raw, rearranged = os.path.join(root, 'raw'), os.path.join(root, 'rearr')
  images = {}
  for si, sid in enumerate(['00001', '00002', '00003']):
    for seq in ('00', '01'):
      for view in ('000', '090'):
        imgs = [figure(60 + 40 * f + 5 * si, 0.5 * f) for f in range(3)]
        src = os.path.join(raw, f'Silhouette_{view}-{seq}', sid)
        write_frames(src, [(f'{f + 1:04d}.png', im)
                           for f, im in enumerate(imgs)])
        dst = os.path.join(rearranged, sid, seq, view)
        os.makedirs(dst)
        for f in range(3):
          os.symlink(os.path.join(src, f'{f + 1:04d}.png'),
                     os.path.join(dst, f'{f + 1:04d}.png'))
        images[(sid, seq, view)] = imgs
  return raw, rearranged, images


def test_oumvlp_layouts_and_cli(tmp_path):
  raw, rearranged, images = make_oumvlp_trees(str(tmp_path))
  out = str(tmp_path / 'out')
  subprocess.run(
      [sys.executable, '-m', 'data_prep.convert', '--dataset=oumvlp',
       f'--raw_dir={raw}', f'--out_dir={out}', '--workers=2'],
      cwd=REPO, check=True, capture_output=True)
  ddir = os.path.join(out, 'oumvlp', '1.0.0')
  records = read_records(ddir)
  assert len(records['train']) == 8 and len(records['test']) == 4
  for key, rec in keyed(records).items():
    want = np.stack([expected_frame(i) for i in images[key]])
    np.testing.assert_array_equal(rec['frames'], want)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'oumvlp' and meta['types'] == ['00', '01']
  assert meta['train_subjects'] == ['00001', '00003']
  assert meta['test_subjects'] == ['00002']
  other = convert.convert('oumvlp', rearranged, str(tmp_path / 'out2'))
  assert_same_records(records, read_records(other))


def test_opengait_pkl_tree(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {}
  for sid in ('002', '080'):
    for typ in ('nm-01', 'bg-02'):
      folder = tmp_path / 'pkl' / sid / typ / '018'
      folder.mkdir(parents=True)
      arr = rng.integers(0, 256, size=(4 + len(arrays), 64, 64),
                         dtype=np.uint8)
      if (sid, typ) == ('080', 'bg-02'):
        arr = arr[:, :, :44]  # wrong frame size: reported, not written
      with open(folder / '018.pkl', 'wb') as f:
        pickle.dump(arr, f)
      arrays[(sid, typ, '018')] = arr
  ddir = convert.convert('opengait_pkl', str(tmp_path / 'pkl'),
                         str(tmp_path / 'out'))
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'casia_b' and meta['source_layout'] == (
      'opengait_pkl')
  by_key = keyed(read_records(ddir))
  assert len(by_key) == 3
  for key, rec in by_key.items():
    np.testing.assert_array_equal(rec['frames'], arrays[key])
  assert meta['report']['frames_skipped'] == {'bad_pkl': 1}
  assert meta['report']['sequences_skipped']['no_frame_left']['items'] == [
      '080-bg-02-018']


def test_layout_errors(tmp_path):
  write_frames(tmp_path / 'bad' / '001' / 'nm-07' / '000',
               [('a.png', figure(100, 0))])
  with pytest.raises(raw_sources.LayoutError, match='nm-07'):
    raw_sources.scan('casia_b', str(tmp_path / 'bad'))
  pkl = tmp_path / 'pkl' / '001' / 'nm-01' / '000'
  pkl.mkdir(parents=True)
  (pkl / '000.pkl').write_bytes(pickle.dumps(np.zeros((1, 64, 64))))
  with pytest.raises(raw_sources.LayoutError, match='opengait_pkl'):
    raw_sources.scan('casia_b', str(tmp_path / 'pkl'))
  with pytest.raises(raw_sources.LayoutError, match='Silhouette_'):
    raw_sources.scan('oumvlp', str(tmp_path / 'pkl'))


def test_partitions():
  casia = partitions.load_partition('casia_b')
  assert len(casia['train']) == 74 and len(casia['test']) == 50
  assert casia['train'][0] == '001' and casia['train'][-1] == '074'
  assert casia['test'][0] == '075' and casia['test'][-1] == '124'
  old = partitions.load_partition('casia_b_73')
  assert len(old['train']) == 73 and '005' not in old['train'] + old['test']
  assert old['test'] == casia['test']
  ou = partitions.load_partition('oumvlp')
  assert len(ou['train']) == 5153 and len(ou['test']) == 5154
  assert all(int(s) % 2 == 1 for s in ou['train'])
  assert ou['train'][-1] == '10305' and ou['test'][-1] == '10307'
  assert all(int(s) % 2 == 0 for s in ou['test'][:-1])
  for p in (casia, old, ou):
    assert not set(p['train']) & set(p['test'])
    assert all(len(set(v)) == len(v) for v in p.values())
  with pytest.raises(ValueError, match='casia_b_73'):
    partitions.load_partition('casia')


def test_beam_path(tmp_path):
  from data_prep import beam_convert  # pylint: disable=g-import-not-at-top
  assert beam_convert.parse_options('runner=DirectRunner, a=1') == [
      '--runner=DirectRunner', '--a=1']
  if not beam_convert.beam_available():
    with pytest.raises(ImportError, match='apache-beam'):
      beam_convert.beam_pretreat_fn('runner=DirectRunner')
    pytest.skip('apache_beam is not installed')
  make_casia_tree(tmp_path / 'raw')
  raw = str(tmp_path / 'raw')
  pool = convert.convert('casia_b', raw, str(tmp_path / 'pool'))
  beam = convert.convert(
      'casia_b', raw, str(tmp_path / 'beam'),
      pretreat=beam_convert.beam_pretreat_fn('runner=DirectRunner'))
  assert_same_records(read_records(pool), read_records(beam))
  assert (tfds_writer.read_gait_metadata(pool)
          == tfds_writer.read_gait_metadata(beam))


def test_renderer_silhouettes_in_raw_frames(tmp_path):
  """Raw 320×240 frames made of the synthetic renderer's silhouettes (each
  pasted at a walking offset) convert to the rule's exact pixels."""
  from data_prep.synthetic import render  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  images = {}
  for sid in ('002', '080'):
    identity = render.sample_identity(rng)
    for typ in ('nm-01', 'bg-01', 'cl-01'):
      sils = render.render_sequence(identity, typ, 54.0, 6, rng,
                                    size=180)  # [6, 180, 180]
      frames = []
      for f, sil in enumerate(sils):
        img = np.zeros((240, 320), np.uint8)
        left = 10 + 12 * f
        img[40:220, left:left + 180] = sil
        frames.append(img)
      write_frames(os.path.join(tmp_path, 'raw', sid, typ, '054'),
                   [(f'{sid}-{typ}-054-{f:03d}.png', im)
                    for f, im in enumerate(frames)])
      images[(sid, typ, '054')] = frames
  ddir = convert.convert('casia_b', str(tmp_path / 'raw'),
                         str(tmp_path / 'out'), workers=2)
  by_key = keyed(read_records(ddir))
  assert set(by_key) == set(images)
  for key, frames in images.items():
    want = np.stack([w for w in map(expected_frame, frames) if w is not None])
    assert len(want) == 6
    np.testing.assert_array_equal(by_key[key]['frames'], want)


def _digests(dataset_dir):
  return {f: hashlib.sha256(open(os.path.join(dataset_dir, f), 'rb').read()
                            ).hexdigest()
          for f in sorted(os.listdir(dataset_dir))}


def test_conversions_in_two_processes_are_byte_identical(tmp_path):
  """Protobuf map order depends on the process: the serialisation must not."""
  for sid in ('001', '075'):
    write_frames(tmp_path / 'raw' / sid / 'nm-01' / '090',
                 [(f'{f}.png', figure(60 + 30 * f, 0.5 * f)) for f in range(3)])
  raw = str(tmp_path / 'raw')
  here = convert.convert('casia_b', raw, str(tmp_path / 'a'))
  subprocess.run(
      [sys.executable, '-m', 'data_prep.convert', '--dataset=casia_b',
       f'--raw_dir={raw}', f'--out_dir={tmp_path / "b"}', '--workers=1'],
      cwd=REPO, check=True, capture_output=True)
  there = os.path.join(tmp_path, 'b', 'casia_b', '1.0.0')
  digests = _digests(here)
  assert sum('.array_record' in f for f in digests) == 2
  assert digests == _digests(there)


def test_casia_b_odd_folders_and_jpeg_are_skipped_and_counted(tmp_path):
  raw = tmp_path / 'raw'
  good = [(f'{f}.png', figure(60 + 30 * f, 0.5 * f)) for f in range(3)]
  for folder in ('001/nm-01/090', '001/nm-01/999', '001/nm-01/zz',
                 '001/nm-07/090', 'abc/nm-01/090', '001/nm-01/090/sub'):
    write_frames(raw / folder, good)
  cv2.imwrite(str(raw / '001' / 'nm-01' / '090' / '3.png.jpg'),
              figure(150, 1.0))
  os.rename(raw / '001' / 'nm-01' / '090' / '3.png.jpg',
            raw / '001' / 'nm-01' / '090' / '3.png')  # JPEG data.
  ddir = convert.convert('casia_b', str(raw), str(tmp_path / 'out'))
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['views'] == ['090'] and meta['types'] == ['nm-01']
  assert meta['train_subjects'] == ['001']
  rep = meta['report']
  assert rep['sequences_written'] == {'train': 1, 'test': 0}
  assert rep['frames_written'] == 3
  assert rep['frames_skipped'] == {'not_png_data': 1}
  assert rep['frames_skipped_examples'] == [
      '001-nm-01-090/3.png: not_png_data: jpeg']
  dirs = {k: v['items'] for k, v in rep['directories_skipped'].items()}
  assert dirs == {
      'bad_subject_id': ['abc'],
      'unknown_type': [os.path.join('001', 'nm-07')],
      'unknown_view': [os.path.join('001', 'nm-01', '999'),
                       os.path.join('001', 'nm-01', 'zz')],
      'unexpected_dir': [os.path.join('001', 'nm-01', '090', 'sub')]}
  text = convert.format_report(rep)
  assert 'directories skipped (unknown_view): 2' in text
  assert 'frames skipped (not_png_data): 1' in text


def test_oumvlp_odd_folders_are_skipped_and_counted(tmp_path):
  frame = [('0001.png', figure(100, 0.0))]
  dist = tmp_path / 'dist'
  for folder in ('Silhouette_000-00/00001', 'Silhouette_999-00/00001',
                 'Silhouette_000-00/1', 'Silhouette_000-00/00002/extra',
                 'notes'):
    write_frames(dist / folder, frame)
  scan = raw_sources.scan('oumvlp', str(dist))
  assert [r.key for r in scan.sequences] == ['00001-00-000', '00002-00-000']
  assert sorted(scan.skipped_dirs) == [
      (os.path.join('Silhouette_000-00', '00002', 'extra'), 'unexpected_dir'),
      (os.path.join('Silhouette_000-00', '1'), 'bad_subject_id'),
      ('Silhouette_999-00', 'unknown_view'),
      ('notes', 'unexpected_dir')]
  rearranged = tmp_path / 'rearr'
  for folder in ('00001/00/000', '00001/00/999', '00001/x/000', 'y/00/000'):
    write_frames(rearranged / folder, frame)
  scan = raw_sources.scan('oumvlp', str(rearranged))
  assert [r.key for r in scan.sequences] == ['00001-00-000']
  assert sorted(scan.skipped_dirs) == [
      (os.path.join('00001', '00', '999'), 'unknown_view'),
      (os.path.join('00001', 'x'), 'unknown_type'),
      ('y', 'bad_subject_id')]


def test_opengait_pkl_names_outside_the_protocol_are_skipped(tmp_path):
  root = tmp_path / 'pkl'
  for folder in ('002/nm-01/018', '002/nm-01/999', '002/foo/018',
                 'xyz/nm-01/018', 'xyz/bg-01/018'):
    (root / folder).mkdir(parents=True)
    (root / folder / '018.pkl').write_bytes(
        pickle.dumps(np.zeros((2, 64, 64), np.uint8)))
  (root / '002' / 'nm-01' / '018' / 'deeper').mkdir()
  protocol, _, scan, splits, _, _ = convert.plan(
      'opengait_pkl', str(root), str(tmp_path / 'cache'))
  assert protocol == 'casia_b'
  assert [t.ref.key for t in splits['train']] == ['002-nm-01-018']
  assert sorted(scan.skipped_dirs) == [
      (os.path.join('002', 'foo'), 'unknown_type'),
      (os.path.join('002', 'nm-01', '018', 'deeper'), 'unexpected_dir'),
      (os.path.join('002', 'nm-01', '999'), 'unknown_view'),
      ('xyz', 'bad_subject_id')]
  with pytest.raises(raw_sources.LayoutError, match='oumvlp names'):
    convert.plan('opengait_pkl', str(root), str(tmp_path / 'cache'),
                 protocol='oumvlp')
