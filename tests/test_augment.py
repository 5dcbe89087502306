"""Training augmentation: OpenGait's RandomRotate / RandomErasing, stateless.

The references below are OpenGait's ``opengait/data/transform.py`` written out
independently of ``gait_jax.data.augment``: cv2 and NumPy on float frames
after ``/ 255``, as OpenGait runs them.
"""

import importlib.util
import math
import os

import cv2
import numpy as np
import pytest

from conftest import blob_sequence
from gait_jax import config as config_lib
from gait_jax.data import augment
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'configs')
OPENGAIT_DA = dict(rotate_prob=0.3, rotate_degree=10.0, erase_prob=0.3,
                   erase_area=(0.05, 0.2), erase_ratio=0.3)
HEIGHT, WIDTH = 64, 44


# --- OpenGait's transforms, on float frames (the reference).


def _og_rotate(seq, degree):
  """``RandomRotate.__call__`` past its coin flip, for a given angle."""
  _, dh, dw = seq.shape
  m1 = cv2.getRotationMatrix2D((dh // 2, dw // 2), degree, 1)
  seq = [cv2.warpAffine(f[0, ...], m1, (dw, dh))
         for f in np.split(seq, seq.shape[0], axis=0)]
  return np.concatenate([np.array(f)[np.newaxis, ...] for f in seq], 0)


def _og_erase(seq, x1, y1, h, w):
  """``RandomErasing.__call__`` (per_frame=False) for a given rectangle."""
  seq = seq.copy()
  seq[:, x1:x1 + h, y1:y1 + w] = 0.
  return seq


class _Random:
  """Python's ``random`` API over a NumPy generator, to replay OpenGait."""

  def __init__(self, rng):
    self.rng = rng

  def uniform(self, a, b):
    return self.rng.uniform(a, b)

  def randint(self, a, b):  # Both ends included.
    return int(self.rng.integers(a, b + 1))


def _og_random_erasing(seq, random, prob=0.5, sl=0.05, sh=0.2, r1=0.3):
  """``RandomErasing(prob, sl, sh, r1, per_frame=False).__call__``."""
  if random.uniform(0, 1) >= prob:
    return seq
  for _ in range(100):
    seq_size = seq.shape
    area = seq_size[1] * seq_size[2]
    target_area = random.uniform(sl, sh) * area
    aspect_ratio = random.uniform(r1, 1 / r1)
    h = int(round(math.sqrt(target_area * aspect_ratio)))
    w = int(round(math.sqrt(target_area / aspect_ratio)))
    if w < seq_size[2] and h < seq_size[1]:
      x1 = random.randint(0, seq_size[1] - h)
      y1 = random.randint(0, seq_size[2] - w)
      seq = seq.copy()
      seq[:, x1:x1 + h, y1:y1 + w] = 0.
      return seq
  return seq


def _og_random_rotate(seq, random, prob=0.5, degree=10):
  if random.uniform(0, 1) >= prob:
    return seq
  return _og_rotate(seq, random.uniform(-degree, degree))


def _blobs(num=6, seed=0):
  """uint8 [num, 64, 44]: cut silhouettes of a walker, values 0/255."""
  seq = blob_sequence(3 + seed, seed % 10, seed % 2, num)
  return np.ascontiguousarray(transforms.cut_width(seq))


def _noise(num=4, seed=0):
  """uint8 [num, 64, 44] with every value 0..255 (worst case for rounding)."""
  return np.random.default_rng(seed).integers(
      0, 256, (num, HEIGHT, WIDTH), dtype=np.uint8)


# --- (a) Fixed angle / rectangle against OpenGait on float frames.


@pytest.mark.parametrize('angle', [10.0, -10.0, 7.3, -3.1, 0.4, 0.0])
def test_rotate_matches_opengait_float_frames(angle):
  for frames in (_blobs(), _blobs(seed=5), _noise()):
    want = _og_rotate(frames / 255.0, angle)  # float64 [S, 64, 44]
    got = augment.rotate(frames, angle)
    assert got.dtype == np.uint8 and got.shape == frames.shape
    # uint8 rounding of OpenGait's float result: at most half a level.
    assert np.abs(got / 255.0 - want).max() <= 0.5 / 255 + 1e-12
  np.testing.assert_array_equal(augment.rotate(_blobs(), 0.0), _blobs())


def test_rotation_centre_is_opengaits_swapped_one():
  m = augment.rotation_matrix(HEIGHT, WIDTH, 9.0)  # [2, 3]
  # The fixed point is x=32, y=22 (cv2 takes (x, y); OpenGait passes (H, W)).
  np.testing.assert_allclose(m @ np.array([32.0, 22.0, 1.0]), [32.0, 22.0],
                             atol=1e-9)
  assert np.abs(m @ np.array([22.0, 32.0, 1.0]) - [22.0, 32.0]).max() > 1.0


def test_rotate_many_frames_in_chunks():
  frames = np.concatenate([_blobs(40, seed=s) for s in range(4)])  # [160..]
  want = np.stack([augment.rotate(f[None], 6.5)[0] for f in frames])
  np.testing.assert_array_equal(augment.rotate(frames, 6.5), want)


def test_erase_matches_opengait():
  frames = _noise() | 1  # No zeros: every erased pixel changes.
  for box in [(0, 0, 10, 7), (30, 20, 25, 24), (54, 37, 10, 7)]:
    want = _og_erase(frames / 255.0, *box)
    got = augment.erase(frames, box)
    np.testing.assert_array_equal(got / 255.0, want)
    assert np.sum(got != frames) == len(frames) * box[2] * box[3]
  np.testing.assert_array_equal(frames, _noise() | 1)  # Input untouched.


@pytest.mark.parametrize('size', [(HEIGHT, WIDTH), (6, 5), (3, 2)])
def test_random_ops_replay_opengait_draw_by_draw(size):
  # OpenGait's code with Python's `random` replaced by the same generator:
  # same decisions, angles and rectangles (small frames force retries).
  height, width = size
  for position in range(60):
    frames = _noise(3, position)[:, :height, :width]
    got_r = augment.random_rotate(
        frames, sampling.augment_rng(0, 1, position, 0), 0.5, 10.0)
    want_r = _og_random_rotate(
        frames / 255.0, _Random(sampling.augment_rng(0, 1, position, 0)),
        0.5, 10)
    assert np.abs(got_r / 255.0 - want_r).max() <= 0.5 / 255 + 1e-12
    got_e = augment.random_erase(
        frames, sampling.augment_rng(0, 1, position, 1), 0.5)
    want_e = _og_random_erasing(
        frames / 255.0, _Random(sampling.augment_rng(0, 1, position, 1)), 0.5)
    np.testing.assert_array_equal(got_e / 255.0, want_e)


def test_erase_gives_up_after_max_tries():
  # Area = H·W and aspect 1: h = H, w = W always fail `h < H and w < W`.
  rng = np.random.default_rng(0)
  assert augment.draw_erase_box(rng, 8, 8, 1.0, 1.0, 1.0, 1.0) is None
  frames = _blobs(2)
  assert augment.random_erase(frames, rng, 1.0, 1.0, 1.0, 1.0) is frames


# --- (b) Statistics over many rows, from the loader's streams.


def test_probabilities_angles_and_areas():
  n = 5000
  angles, boxes = [], []
  for i in range(n):
    step, position = divmod(i, 128)
    angles.append(augment.draw_rotation(
        sampling.augment_rng(7, step, position, augment.RandomRotate.stream),
        0.3, 10.0))
    boxes.append(augment.draw_erase_box(
        sampling.augment_rng(7, step, position, augment.RandomErase.stream),
        HEIGHT, WIDTH, 0.3, 0.05, 0.2, 0.3))
  tol = 4 * math.sqrt(0.3 * 0.7 / n)  # 4 binomial standard deviations.
  rotated = [a for a in angles if a is not None]
  erased = [b for b in boxes if b is not None]
  assert abs(len(rotated) / n - 0.3) < tol
  assert abs(len(erased) / n - 0.3) < tol
  # Rotation and erasing are drawn independently.
  both = sum(a is not None and b is not None for a, b in zip(angles, boxes))
  assert abs(both / n - 0.09) < 4 * math.sqrt(0.09 * 0.91 / n)
  rotated = np.array(rotated)
  assert np.abs(rotated).max() <= 10.0
  assert abs(rotated.mean()) < 4 * 10 / math.sqrt(3 * len(rotated))
  assert abs(np.mean(np.abs(rotated) < 5) - 0.5) < 0.05
  # Erased fraction of the frame: U(0.05, 0.2) before h and w are rounded;
  # rounding moves h·w by at most (h + w) / 2 + 1/4 pixels.
  hw = HEIGHT * WIDTH
  frac = np.array([h * w / hw for _, _, h, w in erased])
  slack = np.array([((h + w) / 2 + 0.25) / hw for _, _, h, w in erased])
  assert np.all(frac >= 0.05 - slack) and np.all(frac <= 0.2 + slack)
  assert 0.045 < frac.min() and frac.max() < 0.211
  assert abs(frac.mean() - 0.125) < 0.005
  for top, left, h, w in erased:
    assert 0 <= top <= HEIGHT - h and 0 <= left <= WIDTH - w
  # Every position of the rectangle is reachable.
  tops = np.array([b[0] for b in erased])
  assert tops.min() == 0 and np.any(tops + [b[2] for b in erased] == HEIGHT)


def test_augment_streams_are_independent():
  def draw(rng):
    return rng.integers(0, 1 << 30, 4)

  a = draw(sampling.augment_rng(0, 5, 3, 0))
  np.testing.assert_array_equal(a, draw(sampling.augment_rng(0, 5, 3, 0)))
  for other in (sampling.augment_rng(0, 5, 3, 1),
                sampling.augment_rng(0, 5, 4, 0),
                sampling.augment_rng(0, 6, 3, 0),
                sampling.augment_rng(1, 5, 3, 0),
                sampling.frame_rng(0, 5, 3)):
    assert not np.array_equal(a, draw(other))
  # Turning rotation off leaves the erasing of every row unchanged.
  frames = _blobs(4)
  both = augment.from_config(dict(OPENGAIT_DA, rotate_prob=1.0,
                                  erase_prob=1.0))
  erase_only = augment.from_config(dict(OPENGAIT_DA, rotate_prob=0.0,
                                        erase_prob=1.0))
  for row in range(5):
    box = augment.draw_erase_box(sampling.augment_rng(0, 2, row, 1), HEIGHT,
                                 WIDTH, 1.0, 0.05, 0.2, 0.3)
    np.testing.assert_array_equal(erase_only(frames, 0, 2, row),
                                  augment.erase(frames, box))
    np.testing.assert_array_equal(
        both(frames, 0, 2, row),
        augment.erase(augment.rotate(frames, augment.draw_rotation(
            sampling.augment_rng(0, 2, row, 0), 1.0, 10.0)), box))


# --- (c) The loader: stateless, host-sliced, off by default.


class _FakeSource:
  """In-memory stand-in for GaitSource: sequences of different lengths."""

  def __init__(self, num_subjects=6, per_subject=4):
    self.sequences = [
        blob_sequence(s, t, t % 2, 7 + (3 * s + t) % 9)
        for s in range(num_subjects) for t in range(per_subject)]
    self.subject_indices = [
        list(range(s * per_subject, (s + 1) * per_subject))
        for s in range(num_subjects)]

  def frames_many(self, indices):
    return [self.sequences[i] for i in indices]


def _loader(source, augment_cfg=None, seed=3, **kw):
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=seed,
                               batch_shuffle=True)
  aug = None if augment_cfg is None else augment.from_config(augment_cfg)
  return pipeline.TrainBatchLoader(source, sampler, num_frames=8,
                                   augment=aug, **kw)


def _old_loader_output(source, sampler, step, num_frames=8):
  """The loader before augmentation existed: sample frames, cut."""
  batch = sampler(step)
  rows = []
  for pos, i in enumerate(batch.indices):
    frames = source.frames_many([i])[0]
    chosen = sampling.sample_frames(sampling.frame_rng(sampler.seed, step, pos),
                                    len(frames), 'fixed_unordered',
                                    num_frames)
    rows.append(transforms.cut_width(frames[chosen]))
  return np.stack(rows), batch.labels


def test_augment_off_is_the_old_output():
  source = _FakeSource()
  default = config_lib.base_config().data.augment
  assert not augment.from_config(default)
  plain, off = _loader(source), _loader(source, default)
  for step in range(3):
    want, labels = _old_loader_output(source, plain.sampler, step)
    for loader in (plain, off):
      got = loader(step)
      np.testing.assert_array_equal(got['sils'], want)
      np.testing.assert_array_equal(got['labels'], labels)


def test_loader_applies_the_ops_per_row_from_seed_step_and_row():
  source = _FakeSource()
  cfg = dict(OPENGAIT_DA, rotate_prob=1.0, erase_prob=1.0)
  aug = augment.from_config(cfg)
  plain, loader = _loader(source), _loader(source, cfg)
  for step in (0, 5):
    base, got = plain(step)['sils'], loader(step)['sils']  # [8, 8, 64, 44]
    for row in range(len(base)):
      want = augment.random_erase(
          augment.random_rotate(
              base[row], sampling.augment_rng(3, step, row, 0), 1.0, 10.0),
          sampling.augment_rng(3, step, row, 1), 1.0, 0.05, 0.2, 0.3)
      np.testing.assert_array_equal(got[row], want)
      np.testing.assert_array_equal(got[row], aug(base[row], 3, step, row))
      assert not np.array_equal(got[row], base[row])
  # Another step, or another seed, augments differently.
  assert not np.array_equal(loader(0)['sils'], loader(5)['sils'])
  other = _loader(source, cfg, seed=4)
  assert not np.array_equal(loader(0)['sils'], other(0)['sils'])


def test_same_seed_and_step_same_batch_and_host_slices():
  source = _FakeSource()
  one = _loader(source, OPENGAIT_DA)
  again = _loader(source, OPENGAIT_DA)  # A resumed run: a fresh loader.
  hosts = [_loader(source, OPENGAIT_DA, process_index=i, process_count=2)
           for i in range(2)]
  changed = 0
  for step in range(6):
    want = one(step)
    np.testing.assert_array_equal(again(step)['sils'], want['sils'])
    parts = [h(step) for h in hosts]
    np.testing.assert_array_equal(
        np.concatenate([p['sils'] for p in parts]), want['sils'])
    np.testing.assert_array_equal(
        np.concatenate([p['labels'] for p in parts]), want['labels'])
    changed += np.sum(np.any(want['sils'] != _loader(source)(step)['sils'],
                             axis=(1, 2, 3)))
  assert 0 < changed < 6 * 8  # p = 0.3 each: some rows, not all.


def test_resumed_iterator_equals_uninterrupted(tiny_dataset):
  src = GaitSource(tiny_dataset, 'train')
  sampler = sampling.PKSampler(src.subject_indices(src.train_classes()), 4,
                               2, seed=1, batch_shuffle=True)
  loader = pipeline.TrainBatchLoader(
      src, sampler, num_frames=6,
      augment=augment.from_config(dict(OPENGAIT_DA, rotate_prob=0.5,
                                       erase_prob=0.5)))
  full = list(pipeline.train_iterator(loader, 0, 4))
  resumed = list(pipeline.train_iterator(loader, 2, 4))
  for a, b in zip(full[2:], resumed):
    assert int(a['step']) == int(b['step'])
    np.testing.assert_array_equal(a['sils'], b['sils'])
  plain = pipeline.TrainBatchLoader(src, sampler, num_frames=6)
  assert any(not np.array_equal(b['sils'], plain(int(b['step']))['sils'])
             for b in full)


# --- (d) Config: schema, recipes, validation.


def _load_config(name, arg=''):
  path = os.path.join(CONFIG_DIR, f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _has_da(name: str) -> bool:
  """OpenGait's DeepGaitV2 and GaitBase-DA wild recipes: perspective, flip
  and rotation, each with probability 0.2."""
  return name.startswith(('deepgaitv2_', 'trackletgait_', 'swingait_')) or (
      name in ('gaitbase_gait3d', 'gaitbase_grew', 'synthetic_wild'))


def test_only_the_augmented_recipes_augment():
  names = sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                 if f.endswith('.py') and f not in ('__init__.py',
                                                    'common.py'))
  assert 'gaitbase_casia_b' in names and 'gaitbase_oumvlp' in names
  assert 'deepgaitv2_gait3d' in names
  for name in names:
    for arg in ('', 'smoke') if not name.startswith('synthetic') else ('',):
      aug = augment.from_config(_load_config(name, arg).data.augment)
      if _has_da(name):
        assert [type(op).__name__ for op in aug.ops] == [
            'RandomPerspective', 'RandomHorizontalFlip', 'RandomRotate'], name
        assert [op.prob for op in aug.ops] == [0.2, 0.2, 0.2], name
        assert aug.ops[2].degree == 10.0
        continue
      if name != 'gaitbase_casia_b':
        assert not aug, name
        continue
      rot, era = aug.ops  # Rotate first, then erase (OpenGait's order).
      assert rot == augment.RandomRotate(prob=0.3, degree=10.0)
      assert era == augment.RandomErase(prob=0.3, area=(0.05, 0.2),
                                        ratio=0.3, max_tries=100)


def test_locked_config_rejects_unknown_keys():
  c = config_lib.base_config()
  c.lock()
  with pytest.raises(AttributeError, match='rotate_prb'):
    c.data.augment.rotate_prb = 0.3
  c.data.augment.rotate_prob = 0.3  # A known key can be set.


@pytest.mark.parametrize('key,value', [
    ('rotate_prob', 1.5), ('rotate_prob', -0.1), ('rotate_prob', True),
    ('rotate_prob', '0.3'), ('erase_prob', 2), ('rotate_degree', -1.0),
    ('rotate_degree', 200.0), ('erase_area', (0.2, 0.05)),
    ('erase_area', (0.0, 0.2)), ('erase_area', (0.1,)), ('erase_area', 0.1),
    ('erase_area', (0.1, 1.5)), ('erase_ratio', 0.0), ('erase_ratio', 1.5),
    ('erase_max_tries', 0)])
def test_bad_values_name_the_key(key, value):
  with pytest.raises(ValueError) as err:
    augment.from_config(dict(OPENGAIT_DA, **{key: value}))
  assert f'data.augment.{key}={value!r}' in str(err.value)


def test_unknown_names_list_the_valid_ones():
  with pytest.raises(ValueError, match='flip') as err:
    augment.from_config({'flip_prob': 0.5})
  assert 'rotate' in str(err.value) and 'erase' in str(err.value)
  with pytest.raises(ValueError, match='rotate_degree') as err:
    augment.from_config({'rotate_angle': 3.0})
  assert 'rotate_prob' in str(err.value)
  with pytest.raises(ValueError, match='rotate, erase'):
    augment.get_augmentation('flip', prob=0.5)


def test_train_rejects_a_bad_augment_config_before_loading_data(tmp_path):
  from gait_jax import train  # pylint: disable=g-import-not-at-top
  c = config_lib.base_config()
  c.data.dataset_dir = str(tmp_path / 'missing')
  c.data.p, c.data.k = 2, 2
  c.data.augment.erase_prob = 1.2
  c.lock()
  with pytest.raises(ValueError, match=r'data\.augment\.erase_prob=1\.2'):
    train.train(c, str(tmp_path / 'work'))
