"""data_prep.convert on tiny trees in the layouts of the in-the-wild datasets.

Each tree holds good sequences and planted defects. Every good sequence
must arrive with its subject/type/view and the frames of an independent
NumPy/OpenCV version of its dataset's rule (written here), and every
defect must be counted in the report with its reason.
"""

import glob
import hashlib
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_prep import convert
from data_prep import raw_wild
from data_prep import tfds_writer
from gait_jax.data import source as source_lib
import test_convert
import test_convert_kill

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
keyed = test_convert.keyed


def read_records(dataset_dir):
  """The records of each split the dataset has."""
  meta = tfds_writer.read_gait_metadata(dataset_dir)
  written = meta['report']['sequences_written']
  return {split: [src[i] for i in range(len(src))]
          for split in ('train', 'test') if written[split]
          for src in [tfds_writer.open_gait_source(dataset_dir, split)]}


# -- independent references of the rules --------------------------------------
def align(img, interpolation, min_sum):
  """Crop rows, resize to height 64, centre on half mass, cut 64 columns
  (padding 32 zero columns first at the border), or None."""
  if img.astype(np.int64).sum() <= min_sum:
    return None
  ys = np.nonzero(img)[0]
  crop = img[ys.min():ys.max() + 1]
  w = int(64 * crop.shape[1] / crop.shape[0])
  crop = cv2.resize(crop, (w, 64), interpolation=interpolation)
  col = crop.astype(np.int64).sum(0)
  above = np.nonzero(np.cumsum(col) * 2 > col.sum())[0]
  if above.size == 0 or above[0] == 0:
    return None
  c = int(above[0])
  if c - 32 <= 0 or c + 32 >= w:
    crop = np.pad(crop, ((0, 0), (32, 32)))
    c += 32
  return crop[:, c - 32:c + 32]


def generic(img):  # Gait3D: OpenGait's pretreatment.py
  return align(img, cv2.INTER_CUBIC, 10000)


def ccpg_rule(img):  # organize_ccpg.py, an all-black frame dropped
  return align(img, cv2.INTER_AREA, 0)


def read(path):
  return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def stack(frames):
  frames = [f for f in frames if f is not None]
  return np.stack(frames) if frames else np.zeros((0, 64, 64), np.uint8)


# -- trees ----------------------------------------------------------------------
def blob(h, w, cx, t):
  """A small silhouette: a grey head, a white body and a swinging leg."""
  img = np.zeros((h, w), np.uint8)
  bw = max(2, w // 6)
  top, bottom = h // 8, h - h // 10
  img[top:bottom, max(0, cx - bw):cx + bw] = 255
  img[top:top + h // 6, max(0, cx - bw // 2):cx + bw // 2] = 120
  sw = int(round(w / 8 * np.sin(t)))
  img[bottom - h // 4:bottom, max(0, cx + sw - 1):cx + sw + 2] = 200
  return img


def put(folder, frames, ext='.png', names=None):
  """Writes frames as <names or 00001...>.ext; returns the paths."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i, img in enumerate(frames):
    name = names[i] if names else f'{i + 1:05d}{ext}'
    paths.append(os.path.join(folder, name))
    cv2.imwrite(paths[-1], img)
  return paths


def plant(folder, corrupt='c.png', empty='e.png', other='notes.txt'):
  """A corrupt image, an empty file and a non-image file in `folder`."""
  with open(os.path.join(folder, corrupt), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n garbage')
  open(os.path.join(folder, empty), 'wb').close()
  with open(os.path.join(folder, other), 'w') as f:
    f.write('x')


def check(ddir, expected):
  """Every record equals its expected frames; the keys are those expected."""
  by_key = keyed(read_records(ddir))
  assert set(by_key) == set(expected)
  for key, want in expected.items():
    rec = by_key[key]
    assert rec['length'] == len(want) >= 1, key
    np.testing.assert_array_equal(rec['frames'], want, err_msg=str(key))
  return by_key


def items(report, group, reason):
  return sorted(report[group][reason]['items'])


def test_gait3d(tmp_path):
  root = tmp_path / 'Gait3D'
  sil = root / '2D_Silhouettes'
  expected = {}
  for si, (sid, typ, view) in enumerate([
      ('0000', 'camid1_videoid2', 'seq0'), ('0000', 'camid1_videoid2', 'seq1'),
      ('0002', 'camid33_videoid2', 'seq0'), ('4000', 'camid1_videoid1',
                                             'seq0')]):
    frames = [blob(70 + 4 * f, 30 + 3 * si, 12 + f, f) for f in range(4)]
    if si == 1:
      frames[2] = np.zeros_like(frames[2])  # an all-dark frame
    names = [f'human_crop_f{100 + 7 * f}.png' for f in range(4)]
    put(sil / sid / typ / view, frames, names=names)
    if sid != '4000':
      expected[(sid, typ, view)] = stack(map(generic, frames))
  put(sil / '0003' / 'camid2_videoid1' / 'seq0',
      [np.zeros((40, 20), np.uint8)] * 2)  # nothing left
  plant(str(sil / '0000' / 'camid1_videoid2' / 'seq0'))
  (sil / '0001' / 'camid1_videoid1' / 'seq0').mkdir(parents=True)  # empty
  put(sil / 'abcd' / 'camid1_videoid1' / 'seq0', [blob(60, 30, 15, 0)])
  put(sil / '0001' / 'cam1' / 'seq0', [blob(60, 30, 15, 0)])
  for other in ('3D_SMPLs', '2D_Poses'):
    (root / other / '0000').mkdir(parents=True)
  ddir = convert.convert('gait3d', str(root), str(tmp_path / 'out'))
  check(ddir, expected)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert (meta['protocol'], meta['partition'], meta['pretreatment']) == (
      'gait3d', 'gait3d', 'png')
  assert meta['train_subjects'] == ['0000'] and meta['test_subjects'] == [
      '0002']
  rep = meta['report']
  assert rep['frames_skipped'] == {'corrupt_image': 2, 'dark_frame': 3}
  assert rep['sequences_skipped']['no_frame_left']['items'] == [
      '0003-camid2_videoid1-seq0']
  assert rep['sequences_skipped']['empty_sequence']['items'] == [
      '0001-camid1_videoid1-seq0']
  assert items(rep, 'files_ignored', 'not_png') == [
      os.path.join('2D_Silhouettes', '0000', 'camid1_videoid2', 'seq0',
                   'notes.txt')]
  assert items(rep, 'directories_skipped', 'other_modality') == [
      '2D_Poses', '3D_SMPLs']
  assert items(rep, 'directories_skipped', 'bad_subject_id') == [
      os.path.join('2D_Silhouettes', 'abcd')]
  assert items(rep, 'directories_skipped', 'unknown_type') == [
      os.path.join('2D_Silhouettes', '0001', 'cam1')]
  assert rep['subject_not_in_partition']['items'] == [
      '4000-camid1_videoid1-seq0']
  # The 2D_Silhouettes folder itself is accepted too: the same records.
  inner = convert.convert('gait3d', str(sil), str(tmp_path / 'out2'))
  test_convert.assert_same_records(read_records(ddir), read_records(inner))
  test = source_lib.GaitSource(ddir, 'test')
  assert test.metadata['protocol'] == 'gait3d'
  assert list(test.views) == ['seq0'] and list(test.subjects) == ['0002']


def grew_frame(f, seed):
  return blob(64, 64, 20 + (seed * 7 + f * 5) % 24, f + seed)


def make_grew(root, n_train=2, frames=4, defects=True):
  """A GREW tree; returns (subject, type, seq) -> expected frames."""
  expected = {}

  def seq(folder, key, n=frames, seed=0):
    imgs = [grew_frame(f, seed) for f in range(n)]
    paths = put(folder, imgs)
    for p in paths:  # the per-frame pose files
      for kind in ('2d', '3d'):
        with open(p[:-4] + f'_{kind}_pose.txt', 'w') as f:
          f.write('320,240,1,2')
    cv2.imwrite(folder.rstrip('/') + '_gei.png', imgs[0])  # beside it
    expected[key] = np.stack(imgs)
    return imgs

  for i in range(n_train):
    sid = f'{i + 1:05d}'
    name = f'tr{i:03d}AB'
    seq(os.path.join(root, 'train', sid, name), (f'{sid}train', '00', name),
        seed=i)
  # Gallery types follow the sorted sequence names: 'aaa1' -> 01.
  seq(os.path.join(root, 'test', 'gallery', '00001', 'zzz9'),
      ('00001', '02', 'zzz9'), seed=50)
  seq(os.path.join(root, 'test', 'gallery', '00001', 'aaa1'),
      ('00001', '01', 'aaa1'), seed=51)
  seq(os.path.join(root, 'test', 'probe', 'Pr0be1'), ('probe', '03', 'Pr0be1'),
      seed=52)
  for d in ('dis1', 'dis2', 'dis3'):
    put(os.path.join(root, 'distractors', d), [grew_frame(0, 9)])
  if not defects:
    return expected
  # Frames are stored as read: an all-black frame is kept.
  folder = os.path.join(root, 'train', '00001', 'tr000AB')
  black = np.zeros((64, 64), np.uint8)
  put(folder, [black], names=['00090.png'])
  expected[('00001train', '00', 'tr000AB')] = np.concatenate(
      [expected[('00001train', '00', 'tr000AB')], black[None]])
  put(folder, [np.full((64, 48), 255, np.uint8)], names=['00091.png'])
  plant(folder, corrupt='00092.png', empty='00093.png', other='meta.json')
  os.makedirs(os.path.join(root, 'test', 'probe', 'EmptySeq'))
  put(os.path.join(root, 'train', '00001', 'bad-name'), [grew_frame(0, 1)])
  put(os.path.join(root, 'train', 'abc', 'seqX'), [grew_frame(0, 1)])
  put(os.path.join(root, 'train', '20001', 'outside'), [grew_frame(0, 1)])
  put(os.path.join(root, 'flow', 'x'), [grew_frame(0, 1)])
  return expected


def test_grew(tmp_path):
  raw = str(tmp_path / 'GREW')
  expected = make_grew(raw)
  ddir = convert.convert('grew', raw, str(tmp_path / 'out'), workers=2)
  check(ddir, expected)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'grew' and meta['pretreatment'] == 'grew'
  assert meta['types'] == ['00', '01', '02', '03']
  assert meta['test_subjects'] == ['00001', 'probe']
  rep = meta['report']
  assert rep['frames_skipped'] == {'corrupt_image': 2, 'wrong_size': 1}
  assert 'tr000AB/00091.png: wrong_size: 64x48' in ' '.join(
      rep['frames_skipped_examples'])
  assert rep['sequences_skipped']['empty_sequence']['items'] == [
      'probe-03-EmptySeq']
  dirs = {k: sorted(v['items']) for k, v in rep['directories_skipped'].items()}
  assert dirs == {
      'distractor': [os.path.join('distractors', d)
                     for d in ('dis1', 'dis2', 'dis3')],
      'bad_sequence_name': [os.path.join('train', '00001', 'bad-name')],
      'bad_subject_id': [os.path.join('train', 'abc')],
      'unexpected_dir': ['flow']}
  files = {k: v['count'] for k, v in rep['files_ignored'].items()}
  # 2 pose files for each of the 5 x 4 good frames; one GEI per sequence.
  assert files == {'pose_file': 40, 'gei_image': 5, 'not_png': 1}
  assert rep['subject_not_in_partition']['items'] == [
      '20001train-00-outside']
  train = source_lib.GaitSource(ddir, 'train')
  assert sorted(train.subjects) == ['00001train', '00002train']


def _digests(dataset_dir):
  return {f: hashlib.sha256(open(os.path.join(dataset_dir, f), 'rb').read()
                            ).hexdigest()
          for f in sorted(os.listdir(dataset_dir))}


def test_grew_beam_equals_pool(tmp_path):
  from data_prep import beam_convert  # pylint: disable=g-import-not-at-top
  if not beam_convert.beam_available():
    pytest.skip('apache_beam is not installed')
  raw = str(tmp_path / 'GREW')
  make_grew(raw)
  pool = convert.convert('grew', raw, str(tmp_path / 'pool'))
  beam = convert.convert(
      'grew', raw, str(tmp_path / 'beam'),
      pretreat=beam_convert.beam_pretreat_fn('runner=DirectRunner'))
  assert _digests(pool) == _digests(beam)
  # The chunk files are gone from the cache.
  assert not glob.glob(str(tmp_path / 'beam' / '.convert_cache' / '*' /
                           '.beam_tasks-*'))


def test_grew_killed_and_restarted_is_byte_identical(tmp_path):
  raw = str(tmp_path / 'GREW')
  make_grew(raw, n_train=60, frames=24, defects=False)
  total = 60 + 3
  reference = convert.convert('grew', raw, str(tmp_path / 'ref'))
  out, cache = str(tmp_path / 'out'), str(tmp_path / 'cache')

  def start():
    return subprocess.Popen(
        [sys.executable, '-m', 'data_prep.convert', '--dataset=grew',
         f'--raw_dir={raw}', f'--out_dir={out}', f'--cache_dir={cache}',
         '--workers=2'], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

  cached = lambda: test_convert_kill._cached(cache)  # pylint: disable=protected-access
  # Killed (SIGKILL, workers included) while pretreating, then while writing.
  test_convert_kill._kill_when(start(), lambda: len(cached()) >= 3)  # pylint: disable=protected-access
  assert len(cached()) < total
  done = os.path.join(out, 'grew', '1.0.0')
  assert not os.path.exists(os.path.join(done, 'dataset_info.json'))
  test_convert_kill._kill_when(start(), lambda: bool(glob.glob(  # pylint: disable=protected-access
      os.path.join(out, 'grew', '*incomplete*'))))
  assert len(cached()) == total
  proc = start()
  assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
  assert _digests(done) == _digests(reference)


def test_ccpg_rerun_is_byte_identical(tmp_path):
  root = tmp_path / 'CCPG'
  sil = root / 'CCPG_G_SIL'
  expected = {}
  for si, (sid, status, view) in enumerate([
      ('000', 'U0_D0', 'F_1'), ('000', 'U0_D0_BG', 'S_2'),
      ('100', 'U3_D3', 'F_1'), ('250', 'U1_D0', 'F_1')]):
    frames = [blob(80 + 2 * f, 50, 20 + 3 * f + si, f) for f in range(4)]
    frames[1] = np.zeros_like(frames[1])  # all black: dropped here
    tiny = np.zeros((80, 50), np.uint8)
    tiny[40:42, 20:26] = 255  # sum 3060 <= 10000: kept (no sum filter)
    frames.append(tiny)
    put(sil / sid / status / view, frames)
    if sid != '250':
      expected[(sid, status, view)] = stack(map(ccpg_rule, frames))
  assert all(len(v) == 4 for v in expected.values())
  put(sil / '001' / 'U0_D0' / 'B_3', [np.zeros((40, 40), np.uint8)] * 2)
  plant(str(sil / '000' / 'U0_D0' / 'F_1'))
  (sil / '100' / 'U0_D3' / 'F_1').mkdir(parents=True)  # empty sequence
  put(sil / '100' / 'U9_D9' / 'F_1', [blob(60, 40, 20, 0)])
  put(sil / '1x0' / 'U0_D0' / 'F_1', [blob(60, 40, 20, 0)])
  (root / 'CCPG_D_MASK_FACE_SHOE' / '000').mkdir(parents=True)
  ddir = convert.convert('ccpg', str(root), str(tmp_path / 'a'), workers=2)
  check(ddir, expected)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'ccpg' and meta['views'] == ['F_1', 'S_2']
  rep = meta['report']
  assert rep['frames_skipped'] == {'corrupt_image': 2, 'dark_frame': 5}
  assert rep['sequences_skipped']['no_frame_left']['items'] == [
      '001-U0_D0-B_3']
  assert rep['sequences_skipped']['empty_sequence']['items'] == [
      '100-U0_D3-F_1']
  assert items(rep, 'directories_skipped', 'unknown_type') == [
      os.path.join('CCPG_G_SIL', '100', 'U9_D9')]
  assert items(rep, 'directories_skipped', 'bad_subject_id') == [
      os.path.join('CCPG_G_SIL', '1x0')]
  assert items(rep, 'directories_skipped', 'other_modality') == [
      'CCPG_D_MASK_FACE_SHOE']
  assert rep['files_ignored']['not_png']['count'] == 1
  assert rep['subject_not_in_partition']['items'] == ['250-U1_D0-F_1']
  # A rerun reuses the output; a fresh conversion (other cache, other
  # worker count) writes the very same bytes.
  before = _digests(ddir)
  assert convert.convert('ccpg', str(root), str(tmp_path / 'a')) == ddir
  assert _digests(ddir) == before
  again = convert.convert('ccpg', str(root), str(tmp_path / 'b'), workers=1)
  assert _digests(again) == before
  assert list(source_lib.GaitSource(ddir, 'test').types) == ['U3_D3']


def sils_pkl_tree(root):
  """SUSTech1K's released pickle tree; returns key -> expected frames."""
  rng = np.random.default_rng(0)
  expected = {}
  for sid, typ, view in [('0000', '00-nm', '000-far'), ('0000', '01-bg', '090'),
                         ('0001', '00-nm', '090')]:
    folder = root / sid / typ / view
    folder.mkdir(parents=True)
    arr = rng.integers(0, 256, (3 + len(expected), 64, 64), dtype=np.uint8)
    for name, data in [
        (f'00-{view}-LiDAR-PCDs.pkl', np.zeros((2, 5, 3), np.float32)),
        (f'05-{view}-Camera-RGB_raw.pkl', np.zeros((2, 8, 8, 3), np.uint8)),
        (f'06-{view}-Camera-Sils_aligned.pkl', arr),
        (f'13-sync-{view}-Camera-Sils_aligned.pkl', arr[:1])]:
      with open(folder / name, 'wb') as f:
        pickle.dump(data, f)
    expected[(sid, typ, view)] = arr
  (root / '0001' / '02-cl' / '000').mkdir(parents=True)  # no silhouettes
  with open(root / '0001' / '02-cl' / '000' / '00-000-LiDAR-PCDs.pkl',
            'wb') as f:
    pickle.dump(np.zeros(3), f)
  bad = root / '0002' / '00-nm' / '000'
  bad.mkdir(parents=True)
  with open(bad / '06-000-Camera-Sils_aligned.pkl', 'wb') as f:
    pickle.dump(np.zeros((2, 64, 44), np.uint8), f)
  (root / '0000' / 'xx' / '000').mkdir(parents=True)
  return expected


def test_sustech1k_pkl_and_raw_trees(tmp_path):
  expected = sils_pkl_tree(tmp_path / 'pkl')
  ddir = convert.convert('sustech1k', str(tmp_path / 'pkl'),
                         str(tmp_path / 'out'))
  check(ddir, expected)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'sustech1k' and meta['pretreatment'] == 'pkl'
  assert meta['views'] == ['000-far', '090']
  rep = meta['report']
  assert items(rep, 'directories_skipped', 'missing_sils_aligned') == [
      os.path.join('0001', '02-cl', '000')]
  assert items(rep, 'directories_skipped', 'unknown_type') == [
      os.path.join('0000', 'xx')]
  assert rep['files_ignored']['other_modality']['count'] == 3 * 3 + 1
  assert rep['frames_skipped'] == {'bad_pkl': 1}
  assert rep['sequences_skipped']['no_frame_left']['items'] == [
      '0002-00-nm-000']
  # OpenGait's own pickle path picks the same pickle by name.
  same = convert.convert('opengait_pkl', str(tmp_path / 'pkl'),
                         str(tmp_path / 'og'), protocol='sustech1k')
  test_convert.assert_same_records(read_records(ddir), read_records(same))

  raw = tmp_path / 'raw'
  expected = {}
  for si, (sid, typ, view) in enumerate([('0000', '00-nm', '000-far'),
                                         ('0001', '01-nm', '270')]):
    frames = [blob(50, 30, 10 + f + si, f) for f in range(3)]
    frames.append(np.zeros((50, 30), np.uint8))  # kept: no filter
    seq = raw / sid / typ / view
    paths = put(seq / 'Sils_aligned', frames)
    for other in ('PCDs', 'RGB_raw', 'Pose'):
      (seq / other).mkdir()
    expected[(sid, typ, view)] = np.stack(
        [cv2.resize(read(p), (64, 64), interpolation=cv2.INTER_CUBIC)
         for p in paths])
  plant(str(raw / '0000' / '00-nm' / '000-far' / 'Sils_aligned'))
  (raw / '0001' / '00-nm' / '090' / 'PCDs').mkdir(parents=True)
  ddir = convert.convert('sustech1k', str(raw), str(tmp_path / 'out_raw'))
  check(ddir, expected)
  rep = tfds_writer.read_gait_metadata(ddir)['report']
  assert rep['frames_skipped'] == {'corrupt_image': 2}
  assert rep['files_ignored']['not_png']['count'] == 1
  assert items(rep, 'directories_skipped', 'missing_sils_aligned') == [
      os.path.join('0001', '00-nm', '090')]
  assert rep['directories_skipped']['other_modality']['count'] == 7


def test_casia_e(tmp_path):
  top = tmp_path / 'CASIA-E' / 'forTrain'
  expected = {}
  for si, (sid, hl, scene, cond, view, num, n, size) in enumerate([
      ('001', 'H', 'scene1', 'nm', '090', '1', 7, 80),
      ('1014', 'L', 'scene3_s', 'cl', '270', '2', 6, 64),
      ('201', 'H', 'scene2', 'bg', '000', '1', 5, 80)]):
    frames = [blob(size, size, 20 + 3 * f + si, f) for f in range(n)]
    frames[0] = np.zeros_like(frames[0])  # kept: no filter
    seq = top / sid / hl / scene / cond / view / num
    paths = put(seq, frames, ext='.jpg')
    if n > 5:
      got = [read(p) for p in paths]
      expected[(sid, f'{hl}-{scene}-{cond}-{num}', view)] = np.stack(
          [g if g.shape[0] == 64 else
           cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR)
           for g in got])
  seq = top / '001' / 'H' / 'scene1' / 'nm' / '090' / '1'
  plant(str(seq), corrupt='x.jpg', empty='y.jpg', other='a.txt')
  put(top / '001' / 'M' / 'scene1' / 'nm' / '090' / '1', [blob(64, 64, 30, 0)])
  (top / '001' / 'H' / 'scene2' / 'cl' / '090' / '1').mkdir(parents=True)
  ddir = convert.convert('casia_e', str(tmp_path / 'CASIA-E'),
                         str(tmp_path / 'out'))
  check(ddir, expected)
  meta = tfds_writer.read_gait_metadata(ddir)
  assert meta['protocol'] == 'casia_e' and meta['views'] == ['090', '270']
  rep = meta['report']
  assert rep['frames_skipped'] == {'corrupt_image': 2, 'too_few_frames': 5}
  assert rep['sequences_skipped']['too_few_frames']['items'] == [
      '201-H-scene2-bg-1-000']
  assert rep['sequences_skipped']['empty_sequence']['items'] == [
      '001-H-scene2-cl-1-090']
  assert rep['files_ignored']['not_image']['count'] == 1
  assert items(rep, 'directories_skipped', 'unknown_type') == [
      os.path.join('forTrain', '001', 'M')]
  assert list(source_lib.GaitSource(ddir, 'test').subjects) == ['1014']


@pytest.mark.parametrize('protocol,names,pkl', [
    ('gait3d', ('0002', 'camid1_videoid2', 'seq0'), 'seq0.pkl'),
    ('grew', ('00001train', '00', 'aB3dE5gH'), 'aB3dE5gH.pkl'),
    ('ccpg', ('100', 'U0_D0_BG', 'F_1'), 'F_1-aligned-sils.pkl'),
    ('casia_e', ('201', 'H-scene2-bg-1', '090'), '090.pkl')])
def test_opengait_pkl_trees_of_the_wild_protocols(tmp_path, protocol, names,
                                                  pkl):
  rng = np.random.default_rng(1)
  folder = tmp_path / 'pkl' / os.path.join(*names)
  folder.mkdir(parents=True)
  arr = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
  with open(folder / pkl, 'wb') as f:
    pickle.dump(arr, f)
  if protocol == 'ccpg':  # OpenGait's data_in_use takes the first, sorted
    for other in ('ratios', 'rgbs', 'sils'):
      with open(folder / f'F_1-{other}.pkl', 'wb') as f:
        pickle.dump(np.zeros(3), f)
  (tmp_path / 'pkl' / names[0] / names[1] / 'bad view!').mkdir()
  for given in (protocol, None):  # given, then inferred from the names
    out = str(tmp_path / f'out_{given}')
    ddir = convert.convert('opengait_pkl', str(tmp_path / 'pkl'), out,
                           protocol=given)
    check(ddir, {names: arr})
    meta = tfds_writer.read_gait_metadata(ddir)
    assert meta['protocol'] == protocol and meta['partition'] == protocol
  assert raw_wild.scan('opengait_pkl', str(tmp_path / 'pkl')).sequences


def test_cache_names_of_wild_rules_differ_by_key(tmp_path):
  """'U0_D0' + view 'BG_1' and 'U0_D0_BG' + view '1' do not share a file."""
  a = raw_wild.SequenceRef('000', 'U0_D0', 'BG_1', ('/x/001.png',))
  b = raw_wild.SequenceRef('000', 'U0_D0_BG', '1', ('/y/001.png',))
  paths = {convert._cache_path(str(tmp_path), r, 'ccpg') for r in (a, b)}  # pylint: disable=protected-access
  assert len(paths) == 2
