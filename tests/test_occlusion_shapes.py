"""RG-Gait's occlusion wrapper and its middle patch, moving patch and moving
pole (``gait_jax.data.augment_occlusion.Occlusion``).

The references follow RG-Gait's ``opengait/data/transform.py`` (written here
with NumPy, on uncut 64×64 frames as RG runs them) and are compared with the
module on the cut 64×44 frames the pipeline augments.
"""

import numpy as np
import pytest

from gait_jax import config as config_lib
from gait_jax.data import augment
from gait_jax.data import augment_occlusion as occlusion
from gait_jax.data import sampling
from gait_jax.data import transforms


def _frames(seed, length=30, height=64, width=64):
  """uint8 [T, H, W]: random blobs in {0, 255} plus a few grey edge values."""
  rng = np.random.default_rng(seed)
  f = np.where(rng.random((length, height, width)) < 0.4, 255, 0)
  f[:, ::7, ::5] = 120  # Intermediate values (as after rotation).
  return f.astype(np.uint8)


def _ref_binarise(x):
  m = float(x.max())
  return np.rint(m * (x > 0.5 * m)).astype(np.uint8)


def _ref_middle(seq, p):
  out = seq.astype(np.float64).copy()
  h = seq.shape[1]
  out[:, int((1 - p) * h / 2):int((1 + p) * h / 2), :] = 0
  return _ref_binarise(out)


def _ref_moving(seq, width, height, velocity):
  """RG's MovingPatch.black_patch, frame i at start_x = int(i * velocity)."""
  out = np.zeros_like(seq)
  h = seq.shape[1]
  for i, frame in enumerate(seq):
    img = frame.copy()
    start = int(i * velocity)
    img[h - height:, start:start + width] = 0
    out[i] = img
  return out


def test_middle_patch_matches_reference():
  for seed, p in ((0, 0.5), (1, 0.2), (2, 0.73), (3, 1.0)):
    f = _frames(seed, width=44)
    got = occlusion.middle_patch(f, p)
    np.testing.assert_array_equal(got, _ref_middle(f, p))
    band = slice(int((1 - p) * 32), int((1 + p) * 32))
    assert not got[:, band].any()
    assert set(np.unique(got)) <= {0, 255}
  np.testing.assert_array_equal(occlusion.middle_patch(f, 0.0), _ref_binarise(
      f.astype(np.float64)))


@pytest.mark.parametrize('width,height,velocity', [
    (25, 19, 0.5), (38, 32, 2.0), (30, 64, 1.3), (64, 10, 0.9)])
def test_moving_patch_on_cut_frames_equals_rg_on_uncut(width, height,
                                                      velocity):
  """Cut(RG's box on 64×64) == the module's box on the cut 64×44 frames."""
  f = _frames(7, length=70)
  want = transforms.cut_width(_ref_moving(f, width, height, velocity))
  got = occlusion.moving_patch(transforms.cut_width(f), width, height,
                               velocity)
  np.testing.assert_array_equal(got, want)
  # Uncut frames: the box itself.
  np.testing.assert_array_equal(
      occlusion.moving_patch(f, width, height, velocity),
      _ref_moving(f, width, height, velocity))
  # Only the box changed, and it moved right frame by frame.
  changed = occlusion.moving_patch(f, width, height, velocity) != f
  assert not changed[:, :64 - height].any()
  cols = [np.flatnonzero(c.any(axis=0)) for c in changed]
  starts = [c[0] for c in cols if c.size]
  assert starts == sorted(starts)


def _ref_occlusion(seq, rng, probs, cfg):
  """RG's Occlusion wrapper: one coin, the first cumulative prob above it."""
  u = rng.random()
  cum = np.cumsum(probs)
  shape = next((s for s, c in zip(('half', 'middle', 'patch', 'pole'), cum)
                if u < c), None)
  _, h, w = seq.shape
  full = max(h, w)
  if shape is None:
    return seq, None
  if shape == 'half':
    p = rng.uniform(*cfg['portion'])
    return occlusion.half_patch(seq, p, rng.random() < 0.5), shape
  if shape == 'middle':
    return _ref_middle(seq, rng.uniform(*cfg['middle_portion'])), shape
  if shape == 'patch':
    width = int(rng.uniform(*cfg['patch_width']) * full)
    height = int(rng.uniform(*cfg['patch_height']) * h)
    velocity = rng.uniform(*cfg['patch_velocity'])
  else:
    width = int(rng.uniform(*cfg['pole_width']) * full)
    height = h
    velocity = rng.uniform(*cfg['pole_velocity'])
  # On uncut frames (w == full) the box directly; the cut case is covered by
  # the test above.
  return _ref_moving(seq, width, height, velocity), shape


def test_wrapper_draws_each_shape_with_its_probability():
  cfg = dict(prob=0.2, portion=(0.1, 0.6), middle_prob=0.1,
             middle_portion=(0.3, 0.6), patch_prob=0.3, patch_width=(0.4, 0.6),
             patch_height=(0.3, 0.5), patch_velocity=(0.5, 2.0),
             pole_prob=0.15, pole_width=(0.1, 0.2), pole_velocity=(1.0, 3.0))
  op = occlusion.Occlusion(**cfg)
  probs = (0.2, 0.1, 0.3, 0.15)
  f = _frames(3, length=12)
  counts = {}
  for seed in range(400):
    got = op(f, np.random.default_rng(seed))
    want, shape = _ref_occlusion(f, np.random.default_rng(seed), probs, cfg)
    np.testing.assert_array_equal(got, want)
    if shape is None:
      assert got is f
    counts[shape] = counts.get(shape, 0) + 1
  for shape, p in zip(('half', 'middle', 'patch', 'pole', None),
                      probs + (0.25,)):
    # Binomial(400, p): 4 standard deviations.
    assert abs(counts[shape] / 400 - p) < 4 * np.sqrt(p * (1 - p) / 400)


def test_config_keys_and_validation():
  c = config_lib.base_config()
  c.data.augment.occlusion_pole_prob = 0.5
  aug = augment.from_config(c.data.augment)
  assert aug.ops == (occlusion.Occlusion(pole_prob=0.5),)
  f = transforms.cut_width(_frames(4, length=20))
  rng = sampling.augment_rng(2, 3, 1, occlusion.Occlusion.stream)
  np.testing.assert_array_equal(aug(f, 2, 3, 1), occlusion.Occlusion(
      pole_prob=0.5)(f, rng))
  with pytest.raises(ValueError, match='sum to 1.2'):
    occlusion.Occlusion(prob=0.5, patch_prob=0.7)
  with pytest.raises(ValueError, match='occlusion_patch_velocity'):
    occlusion.Occlusion(patch_velocity=(2.0, 1.0))
  with pytest.raises(ValueError, match='occlusion_middle_prob'):
    occlusion.Occlusion(middle_prob=-0.1)
  with pytest.raises(ValueError, match='occlusion_pole_width'):
    occlusion.Occlusion(pole_width=(0.5, 1.5))
  with pytest.raises(ValueError, match='unknown parameter .pole_heigth.'):
    augment.from_config({'occlusion_pole_heigth': (0.1, 0.2)})
