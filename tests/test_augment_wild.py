"""RandomPerspective, RandomHorizontalFlip and the in-the-wild Compose order.

The references are OpenGait's transforms as OpenGait's transform.py states
them, written here with cv2 and NumPy independently of ``gait_jax.data``:
perspective per frame on the uint8 64×64 frames
(``cv2.getPerspectiveTransform`` + ``cv2.warpPerspective``), flip by slicing,
rotation per frame on float frames. Python's ``random`` calls are replayed
from the same NumPy generator (``_Random``), so decisions and corners are
compared draw by draw.
"""

import math

import cv2
import numpy as np
import pytest

from conftest import blob_sequence
from gait_jax import config as config_lib
from gait_jax.data import augment
from gait_jax.data import augment_geometric as geometric
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms

WILD = dict(perspective_prob=0.2, hflip_prob=0.2, rotate_prob=0.2,
            rotate_degree=10.0)
STREAM = {op.name: op.stream for op in augment.AUGMENTATIONS.values()}


class _Random:
  """Python's ``random`` API over a NumPy generator."""

  def __init__(self, rng):
    self.rng = rng

  def uniform(self, a, b):
    return self.rng.uniform(a, b)

  def choice(self, seq):
    return seq[int(self.rng.integers(0, len(seq)))]


def _og_perspective(seq, random, prob):
  """OpenGait's RandomPerspective on uint8 [S, h, w]; also returns the corners."""
  if random.uniform(0, 1) >= prob:
    return seq, None
  _, h, w = seq.shape
  c = int(w // 44) * 10
  xs_left, xs_right = list(range(0, c)), list(range(w - c, w))
  tl = (random.choice(xs_left), 0)
  tr = (random.choice(xs_right), 0)
  bl = (random.choice(xs_left), h)
  br = (random.choice(xs_right), h)
  src = np.float32([tl, tr, br, bl])
  dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
  m = cv2.getPerspectiveTransform(src, dst)
  out = np.stack([cv2.warpPerspective(f, m, (w, h)) for f in seq])
  return out, (tl[0], tr[0], bl[0], br[0])


def _og_hflip(seq, random, prob):
  if random.uniform(0, 1) >= prob:
    return seq
  return seq[..., ::-1]


def _og_rotate(seq, random, prob, degree):
  """OpenGait's RandomRotate on float frames (OpenGait's swapped centre)."""
  if random.uniform(0, 1) >= prob:
    return seq
  angle = random.uniform(-degree, degree)
  _, dh, dw = seq.shape
  m = cv2.getRotationMatrix2D((dh // 2, dw // 2), angle, 1)
  return np.stack([cv2.warpAffine(f, m, (dw, dh)) for f in seq])


def _walker(num=5, seed=0, width=64):
  """uint8 [num, 64, width] walker silhouettes (resized when width != 64)."""
  seq = blob_sequence(3 + seed, seed % 10, seed % 2, num)
  seq = cv2.resize(np.moveaxis(seq, 0, -1), (width, 64),
                   interpolation=cv2.INTER_AREA).reshape(64, width, -1)
  return np.ascontiguousarray(np.moveaxis(seq, -1, 0))


def _noise(num=3, seed=0, width=64):
  return np.random.default_rng(seed).integers(0, 256, (num, 64, width),
                                              dtype=np.uint8)


# --- RandomPerspective.


@pytest.mark.parametrize('corners', [
    (0, 63, 0, 63), (9, 54, 9, 54), (3, 60, 7, 56), (9, 63, 0, 54),
    (0, 54, 9, 63), (5, 58, 5, 58)])
def test_perspective_matches_cv2_reference(corners):
  tl, tr, bl, br = corners
  src = np.float32([(tl, 0), (tr, 0), (br, 64), (bl, 64)])
  dst = np.float32([(0, 0), (64, 0), (64, 64), (0, 64)])
  m = cv2.getPerspectiveTransform(src, dst)
  got_m = geometric.perspective_matrix(64, 64, corners)
  np.testing.assert_array_equal(got_m, m)
  # The corners go onto the canvas corners (w, h, not w-1, h-1).
  pts = got_m @ np.array([[tl, tr, br, bl], [0, 0, 64, 64], [1, 1, 1, 1]])
  np.testing.assert_allclose(pts[:2] / pts[2], [[0, 64, 64, 0],
                                                [0, 0, 64, 64]], atol=1e-9)
  for frames in (_walker(), _walker(7, seed=4), _noise()):
    want = np.stack([cv2.warpPerspective(f, m, (64, 64)) for f in frames])
    got = geometric.warp_perspective(frames, got_m)
    assert got.dtype == np.uint8 and got.shape == frames.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('width', [64, 128, 44])
def test_random_perspective_replays_the_reference(width):
  warped = 0
  for position in range(80):
    frames = _walker(3, position % 7, width)
    rng = sampling.augment_rng(0, 1, position, STREAM['perspective'])
    got = geometric.random_perspective(frames, rng, 0.5)
    want, corners = _og_perspective(frames, _Random(sampling.augment_rng(
        0, 1, position, STREAM['perspective'])), 0.5)
    np.testing.assert_array_equal(got, want)
    if corners is None:
      assert got is frames
    else:
      warped += 1
      assert not np.array_equal(got, frames)
  assert 20 < warped < 60


def test_corner_ranges_and_draw_order():
  for width, c in ((64, 10), (128, 20), (44, 10), (87, 10), (88, 20)):
    n = 1500
    corners = np.array([geometric.draw_perspective(
        sampling.augment_rng(2, i, 0, 2), width, 1.0) for i in range(n)])
    assert geometric.perspective_margin(width) == c
    for col, (lo, hi) in enumerate([(0, c - 1), (width - c, width - 1),
                                    (0, c - 1), (width - c, width - 1)]):
      values = corners[:, col]
      assert sorted(set(values.tolist())) == list(range(lo, hi + 1))
      np.testing.assert_allclose(values.mean(), (lo + hi) / 2,
                                 atol=4 * c / math.sqrt(12 * n))
    # The four corners are independent draws (TL and BL are not tied).
    assert np.mean(corners[:, 0] == corners[:, 2]) < 2.5 / c
  # Draw order: u, then TL, TR, BL, BR from the same generator.
  for i in range(50):
    rng = np.random.default_rng(i)
    u = rng.random()
    want = None if u >= 0.7 else (
        int(rng.integers(0, 10)), int(rng.integers(54, 64)),
        int(rng.integers(0, 10)), int(rng.integers(54, 64)))
    got = geometric.draw_perspective(np.random.default_rng(i), 64, 0.7)
    assert got == want
  with pytest.raises(ValueError, match='at least 44 wide'):
    geometric.draw_perspective(np.random.default_rng(0), 43, 1.0)
  assert geometric.draw_perspective(np.random.default_rng(0), 43, 0.0) is None


def test_perspective_is_a_horizontal_stretch():
  # Corners inside the frame: rows move only sideways; the content widens.
  frames = _walker(4)
  m = geometric.perspective_matrix(64, 64, (9, 54, 9, 54))
  np.testing.assert_allclose(m[1], [0, 1, 0], atol=1e-12)
  np.testing.assert_allclose(m[2], [0, 0, 1], atol=1e-12)
  got = geometric.warp_perspective(frames, m)

  def width(frame):
    return np.ptp(np.nonzero(frame.any(axis=0))[0])

  assert all(width(g) > width(f) for f, g in zip(frames, got))
  np.testing.assert_array_equal(frames, _walker(4))  # Input untouched.


# --- RandomHorizontalFlip.


def test_hflip():
  frames = _noise(4, 1, 44)
  flipped = 0
  for position in range(400):
    rng = sampling.augment_rng(1, 0, position, STREAM['hflip'])
    got = geometric.random_hflip(frames, rng, 0.3)
    want = _og_hflip(frames, _Random(sampling.augment_rng(
        1, 0, position, STREAM['hflip'])), 0.3)
    np.testing.assert_array_equal(got, want)
    if got is not frames:
      flipped += 1
      np.testing.assert_array_equal(got[:, :, ::-1], frames)
      assert got.flags.c_contiguous
  assert abs(flipped / 400 - 0.3) < 4 * math.sqrt(0.21 / 400)
  rng = np.random.default_rng(0)
  assert geometric.random_hflip(frames, rng, 0.0) is frames


# --- The composed pipeline.


class _FakeSource:
  def __init__(self, num_subjects=6, per_subject=4):
    self.sequences = [blob_sequence(s, t, t % 2, 6 + (3 * s + t) % 9)
                      for s in range(num_subjects) for t in range(per_subject)]
    self.subject_indices = [list(range(s * per_subject, (s + 1) * per_subject))
                            for s in range(num_subjects)]

  def frames_many(self, indices):
    return [self.sequences[i] for i in indices]


def _reference(uncut, seed, step, row, cfg):
  """OpenGait's Compose[Perspective, Cut, HFlip, Rotate] from the spec."""
  def rand(name):
    return _Random(sampling.augment_rng(seed, step, row, STREAM[name]))

  seq, _ = _og_perspective(uncut, rand('perspective'), cfg['perspective_prob'])
  seq = seq[..., 10:54]  # BaseSilCuttingTransform: 64 -> 44 columns.
  seq = _og_hflip(seq, rand('hflip'), cfg['hflip_prob'])
  seq = _og_rotate(np.ascontiguousarray(seq) / 255.0, rand('rotate'),
                   cfg['rotate_prob'], cfg['rotate_degree'])
  return seq  # float [S, 64, 44]


@pytest.mark.parametrize('sampler', ['fixed_ordered', 'unfixed_unordered'])
@pytest.mark.parametrize('prob', [1.0, 0.5])
def test_loader_applies_compose_order(sampler, prob):
  cfg = dict(WILD, perspective_prob=prob, hflip_prob=prob, rotate_prob=prob)
  source = _FakeSource()
  ps = sampling.PKSampler(source.subject_indices, 4, 2, seed=5,
                          batch_shuffle=True)
  kw = (dict(num_frames=8, frames_skip=4) if sampler == 'fixed_ordered' else
        dict(num_frames=9, frames_range=(4, 9)))
  loader = pipeline.TrainBatchLoader(source, ps, frame_sampler=sampler,
                                     augment=augment.from_config(cfg), **kw)
  plain = pipeline.TrainBatchLoader(source, ps, frame_sampler=sampler, **kw)
  for step in range(3):
    got, base = loader(step), plain(step)
    np.testing.assert_array_equal(got['mask'], base['mask'])
    for row, record in enumerate(ps(step).indices):
      chosen = sampling.sample_frames(
          sampling.frame_rng(5, step, row), len(source.sequences[record]),
          sampler, kw['num_frames'], kw.get('frames_skip', 0),
          kw.get('frames_range'))
      f = len(chosen)
      want = _reference(source.sequences[record][chosen], 5, step, row, cfg)
      assert np.abs(got['sils'][row, :f] / 255.0 - want).max() <= (
          0.5 / 255 + 1e-12)
      assert not got['sils'][row, f:].any()  # Padding stays zero.


def test_order_matters():
  # Perspective after the cut, or flip after rotation, gives other frames.
  frames = _walker(3, 2)
  m = geometric.perspective_matrix(64, 64, (9, 54, 9, 54))
  before = transforms.cut_width(geometric.warp_perspective(frames, m))
  cut = np.ascontiguousarray(transforms.cut_width(frames))
  after = geometric.warp_perspective(cut, geometric.perspective_matrix(
      64, 44, (9, 34, 9, 34)))
  assert not np.array_equal(before, after)
  flip_rot = augment.rotate(np.ascontiguousarray(cut[..., ::-1]), 8.0)
  rot_flip = augment.rotate(cut, 8.0)[..., ::-1]
  assert not np.array_equal(flip_rot, rot_flip)


def test_probabilities_are_honoured_and_independent():
  aug = augment.from_config(WILD)
  n, fired = 6000, []
  for i in range(n):
    step, row = divmod(i, 128)

    def rng(name, step=step, row=row):
      return sampling.augment_rng(9, step, row, STREAM[name])

    fired.append((
        geometric.draw_perspective(rng('perspective'), 64, 0.2) is not None,
        geometric.draw_flip(rng('hflip'), 0.2),
        augment.draw_rotation(rng('rotate'), 0.2, 10.0) is not None))
  fired = np.array(fired)  # [n, 3]
  tol = 4 * math.sqrt(0.2 * 0.8 / n)
  np.testing.assert_allclose(fired.mean(0), 0.2, atol=tol)
  assert abs(fired.all(1).mean() - 0.008) < 4 * math.sqrt(0.008 / n)
  assert abs((~fired.any(1)).mean() - 0.512) < 4 * math.sqrt(0.25 / n)
  # The Augment object acts exactly on those draws (spot check).
  frames = _walker(2, 1)
  for i in range(0, 600, 3):
    step, row = divmod(i, 128)
    got = aug(np.ascontiguousarray(transforms.cut_width(
        aug.pre_cut(frames, 9, step, row))), 9, step, row)
    want = _reference(frames, 9, step, row, WILD)
    assert np.abs(got / 255.0 - want).max() <= 0.5 / 255 + 1e-12
    if not fired[i].any():
      np.testing.assert_array_equal(got, transforms.cut_width(frames))


# --- Config.


def test_config_keys_build_ops_in_compose_order():
  assert not augment.from_config(config_lib.base_config().data.augment)
  aug = augment.from_config(WILD)
  assert aug.ops == (geometric.RandomPerspective(0.2),
                     geometric.RandomHorizontalFlip(0.2),
                     augment.RandomRotate(0.2, 10.0))
  assert [op.before_cut for op in aug.ops] == [True, False, False]
  names = list(augment.AUGMENTATIONS)
  assert names == ['perspective', 'hflip', 'rotate', 'erase', 'occlusion']
  assert len(set(STREAM.values())) == len(STREAM)
  assert (STREAM['rotate'], STREAM['erase']) == (0, 1)  # Unchanged streams.
  c = config_lib.base_config()
  c.lock()
  c.data.augment.update(WILD)
  assert augment.from_config(c.data.augment) == aug


@pytest.mark.parametrize('key,value', [
    ('perspective_prob', 1.5), ('perspective_prob', True),
    ('hflip_prob', -0.1), ('hflip_prob', '0.2')])
def test_bad_values_name_the_key(key, value):
  with pytest.raises(ValueError) as err:
    augment.from_config(dict(WILD, **{key: value}))
  assert f'data.augment.{key}={value!r}' in str(err.value)
  with pytest.raises(ValueError, match='hflip_prob'):
    augment.from_config({'hflip_p': 0.2})


def test_build_accepts_the_wild_augment():
  from configs import common  # pylint: disable=g-import-not-at-top
  for arg in ('', 'smoke'):
    c = common.build(arg, model='gaitbase', dataset='casia_b',
                     optim=common.sgd(), schedule=common.multistep(20_000),
                     num_steps=60_000, pk=(32, 4), sampler='unfixed_unordered',
                     frames_range=(10, 50), batch_shuffle=True,
                     eval_batch_size=16, augment=WILD)
    assert augment.from_config(c.data.augment) == augment.from_config(WILD)
