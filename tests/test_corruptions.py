"""Silhouette corruptions (``gait_jax.data.corruptions``) and RG-Gait's half
patch (``gait_jax.data.augment_occlusion``).

References are written here from the RobustGait and RG-Gait papers and code with NumPy and
cv2, independently of the modules under test.
"""

import math
import zlib

import cv2
import numpy as np
import pytest

from gait_jax import config as config_lib
from gait_jax.data import augment
from gait_jax.data import augment_occlusion as occlusion
from gait_jax.data import corruptions
from gait_jax.data import sampling

NAMES = list(corruptions.CORRUPTIONS)
STOCHASTIC = ('freeze', 'patch', 'object_mask', 'pixel_flip', 'half_patch')
TEMPORAL = ('freeze', 'sampling')


def _walker(seed, length=40, height=64, width=44):
  """uint8 [T, H, W] in {0, 255}: an ellipse body with random-walk centre
  and size plus two swinging legs, so that no two frames are equal."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  cy, cx = height * 0.35, width / 2
  frames = np.zeros((length, height, width), np.uint8)
  for t in range(length):
    cx += rng.normal(0, 0.7)
    cy += rng.normal(0, 0.4)
    ax, ay = 5 + rng.uniform(0, 3), 12 + rng.uniform(0, 3)
    swing = rng.uniform(-6, 6)
    body = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
    legs = (yy > cy + ay - 2) & (
        np.abs(xx - cx - swing * (yy - cy - ay) / 25) < 2.5)
    frames[t][body | legs] = 255
  return frames


SEQS = [_walker(s) for s in range(4)]
KEYS = [f'{s:03d}-nm-01-090' for s in range(4)]


def _change(name, frames, out):
  if name in TEMPORAL:  # Fraction of the first T frames that changed.
    return float(np.mean(np.any(out[:len(frames)] != frames, axis=(1, 2))))
  return float(np.mean(np.abs(out.astype(np.int32) - frames)))


# --- Determinism and the registry.


@pytest.mark.parametrize('name', NAMES)
def test_deterministic_per_key_name_severity(name):
  frames = SEQS[0]
  a = corruptions.corrupt(frames, name, 3, 'seq-a')
  b = corruptions.corrupt(frames.copy(), name, 3, 'seq-a')
  assert a.dtype == np.uint8 and a.shape[1:] == frames.shape[1:]
  assert a.tobytes() == b.tobytes()
  others = [corruptions.corrupt(frames, name, 3, f'seq-{c}')
            for c in 'bcdefghijk']
  seeded = corruptions.corrupt(frames, name, 3, 'seq-a', seed=1)
  if name in STOCHASTIC:
    assert any(o.tobytes() != a.tobytes() for o in others)
    if name != 'half_patch':  # Its only draw is a coin.
      assert all(o.tobytes() != a.tobytes() for o in others)
      assert seeded.tobytes() != a.tobytes()
  else:  # Deterministic corruptions ignore key and seed.
    assert all(o.tobytes() == a.tobytes() for o in others)
  np.testing.assert_array_equal(frames, SEQS[0])  # Input untouched.


def test_rng_uses_a_stable_hash():
  # crc32 of the key and name, not Python's (salted) hash.
  draws = corruptions.corruption_rng('patch', '001-nm-01-090').random(2)
  want = sampling.rng_for(0, 0x636F7272, zlib.crc32(b'001-nm-01-090'),
                          zlib.crc32(b'patch')).random(2)
  np.testing.assert_array_equal(draws, want)


def test_registry_error_lists_valid_names():
  with pytest.raises(ValueError) as err:
    corruptions.corrupt(SEQS[0], 'pixelflip', 1, 'k')
  msg = str(err.value)
  assert "'pixelflip'" in msg
  for name in NAMES:
    assert name in msg
  assert set(NAMES) == {'freeze', 'sampling', 'patch', 'object_mask',
                        'pixel_flip', 'erode', 'dilate', 'blur_threshold',
                        'half_patch'}


@pytest.mark.parametrize('severity', [0, 6, 2.0, True, '3'])
def test_bad_severity(severity):
  with pytest.raises(ValueError, match='severity'):
    corruptions.corrupt(SEQS[0], 'erode', severity, 'k')


def test_bad_frames():
  with pytest.raises(ValueError, match='uint8'):
    corruptions.corrupt(SEQS[0].astype(np.float32), 'erode', 1, 'k')
  with pytest.raises(ValueError, match='uint8'):
    corruptions.corrupt(SEQS[0][0], 'erode', 1, 'k')


# --- Severity.


@pytest.mark.parametrize('name', NAMES)
def test_severity_increases_the_change(name):
  change = []
  for s in corruptions.SEVERITIES:
    change.append(np.mean([
        _change(name, f, corruptions.corrupt(f, name, s, k))
        for f, k in zip(SEQS, KEYS)]))
  if name == 'freeze':
    # RobustGait's quirk: severity 5 (max(0.1T, 1)) is severity 3 (0.1T).
    assert change[4] == change[2]
    for f, k in zip(SEQS, KEYS):
      np.testing.assert_array_equal(corruptions.corrupt(f, name, 5, k),
                                    corruptions.corrupt(f, name, 3, k))
    change = change[:4]
  assert all(b > a for a, b in zip(change, change[1:])), change
  assert change[0] > 0


# --- Exact semantics against NumPy references.


def _ref_anchor_count(length, severity):
  k = [int(0.4 * length), int(0.2 * length), int(0.1 * length),
       int(max(0.05 * length, 2)), int(max(0.1 * length, 1))][severity - 1]
  return max(1, min(length, k))


@pytest.mark.parametrize('length', [1, 2, 7, 10, 23, 40, 150])
def test_freeze_semantics(length):
  frames = np.broadcast_to(
      (np.arange(length) % 256).astype(np.uint8)[:, None, None],
      (length, 4, 3)).copy()
  frames[:, 0, 0] = np.arange(length) // 256  # Frame index = (hi, lo).
  for s in corruptions.SEVERITIES:
    for key in ('a', 'b'):
      out = corruptions.corrupt(frames, 'freeze', s, key)
      assert out.shape == frames.shape
      held = out[:, 0, 0].astype(int) * 256 + out[:, 1, 1]
      anchors = np.unique(held)
      assert len(anchors) == _ref_anchor_count(length, s)
      assert anchors[0] == 0 and held[0] == 0
      want = np.array([anchors[anchors <= t].max() for t in range(length)])
      np.testing.assert_array_equal(held, want)  # Held until the next one.
      np.testing.assert_array_equal(out, frames[want])


@pytest.mark.parametrize('length', [1, 5, 31, 32, 33, 40])
def test_sampling_semantics(length):
  frames = np.random.default_rng(length).integers(
      0, 256, (length, 6, 5)).astype(np.uint8)
  for s, r in zip(corruptions.SEVERITIES, (2, 4, 8, 16, 32)):
    out = corruptions.corrupt(frames, 'sampling', s, 'k')
    n = math.ceil(length / r) * r
    want = np.stack([frames[(t // r) * r] for t in range(n)])
    np.testing.assert_array_equal(out, want)


def test_pixel_flip_fraction():
  frames = np.random.default_rng(0).integers(0, 256, (9, 64, 44)).astype(
      np.uint8)
  for s, p in zip(corruptions.SEVERITIES, (0.02, 0.05, 0.1, 0.15, 0.2)):
    out = corruptions.corrupt(frames, 'pixel_flip', s, 'k')
    changed = out != frames  # 255 - x != x for every uint8 x.
    np.testing.assert_array_equal(changed.sum(axis=(1, 2)),
                                  round(p * 64 * 44))
    np.testing.assert_array_equal(out[changed], 255 - frames[changed])


def test_occluders_are_static_zero_and_nested():
  for name in ('patch', 'object_mask'):
    f = SEQS[1]
    zeroed = []
    for s in corruptions.SEVERITIES:
      out = corruptions.corrupt(f, name, s, KEYS[1])
      assert np.all((out == f) | (out == 0))  # Only zeroes pixels.
      zeroed.append(out == 0)
    for a, b in zip(zeroed, zeroed[1:]):
      assert not np.any(a & ~b & (f > 0))  # Severity s's zeros stay zero.
  # The patch's area and position are the same in every frame.
  probe = np.full((5, 64, 44), 9, np.uint8)
  for s, area in zip(corruptions.SEVERITIES, (0.05, .1, .2, .3, .4)):
    z = corruptions.corrupt(probe, 'patch', s, 'k') == 0
    assert np.all(z == z[0])
    assert abs(z[0].mean() - area) < 0.03
    zb = corruptions.corrupt(probe, 'object_mask', s, 'k') == 0
    assert np.all(zb == zb[0])
    assert abs(zb[0].mean() - area) < 0.25 * area + 0.01


def test_erode_dilate_blur_against_cv2():
  f = SEQS[2]
  for s in corruptions.SEVERITIES:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * s + 1,) * 2)
    np.testing.assert_array_equal(
        corruptions.corrupt(f, 'erode', s, 'k'),
        np.stack([cv2.erode(x, k) for x in f]))
    np.testing.assert_array_equal(
        corruptions.corrupt(f, 'dilate', s, 'k'),
        np.stack([cv2.dilate(x, k) for x in f]))
    ks = 2 * math.ceil(3 * s) + 1
    blur = np.stack([cv2.GaussianBlur(x.astype(np.float32), (ks, ks), s)
                     for x in f])
    np.testing.assert_array_equal(
        corruptions.corrupt(f, 'blur_threshold', s, 'k'),
        np.where(blur >= 128, 255, 0).astype(np.uint8))


# --- RG-Gait's ConsistentHalfPatch.


def _ref_half_patch(seq, p, top):
  """RG-Gait's half patch on uint8 [S, H, W], frame by frame on float64 frames."""
  _, h, w = seq.shape
  rows = slice(0, int(math.floor((1 - p) * h))) if top else slice(
      int(math.floor(p * h)), h)
  out = np.stack([cv2.resize(x[rows].astype(np.float64), (w, h),
                             interpolation=cv2.INTER_LINEAR) for x in seq])
  m = out.max()
  return np.rint(m * (out > 0.5 * m)).astype(np.uint8)


def _ref_draws(rng, prob, lo=0.1, hi=0.6):
  if rng.random() >= prob:
    return None
  return rng.uniform(lo, hi), rng.random() < 0.5


def test_half_patch_matches_reference_given_the_draws():
  seen = set()
  op = occlusion.Occlusion(prob=0.6)
  for seed in range(24):
    f = _walker(seed, length=70 if seed == 0 else 12, width=44 + seed % 21)
    draws = _ref_draws(np.random.default_rng(seed), 0.6)
    got = op(f, np.random.default_rng(seed))
    if draws is None:
      assert got is f
      seen.add(None)
      continue
    seen.add(bool(draws[1]))
    np.testing.assert_array_equal(got, _ref_half_patch(f, *draws))
    assert set(np.unique(got)) <= {0, 255}
  assert seen == {None, True, False}  # Both sides and no-op exercised.
  # Top band visible: the bottom of the top band lands at the frame bottom.
  f = SEQS[0]
  np.testing.assert_array_equal(occlusion.half_patch(f, 0.0, True), f)
  np.testing.assert_array_equal(occlusion.half_patch(f, 0.0, False), f)


def test_half_patch_as_augmentation_and_corruption():
  assert not augment.from_config(config_lib.base_config().data.augment)
  c = config_lib.base_config()
  c.lock()
  c.data.augment.occlusion_prob = 1.0
  aug = augment.from_config(c.data.augment)
  assert aug.ops == (occlusion.Occlusion(1.0, (0.1, 0.6)),)
  streams = [op.stream for op in augment.AUGMENTATIONS.values()]
  assert len(set(streams)) == len(streams)
  assert list(augment.AUGMENTATIONS)[-1] == 'occlusion'  # Last, post-cut.
  f = SEQS[3]
  want = _ref_half_patch(f, *_ref_draws(
      sampling.augment_rng(5, 2, 3, occlusion.Occlusion.stream), 1.0))
  np.testing.assert_array_equal(aug(f, 5, 2, 3), want)
  np.testing.assert_array_equal(aug.pre_cut(f, 5, 2, 3), f)
  for bad in ({'occlusion_prob': 1.5}, {'occlusion_portion': (0.5, 0.2)},
              {'occlusion_portion': (0.1, 1.0)}):
    with pytest.raises(ValueError, match='data.augment.occlusion_'):
      augment.from_config(bad)
  # Evaluation: fixed p per severity, the side from the key's generator.
  for s, p in zip(corruptions.SEVERITIES, (0.1, 0.2, 0.3, 0.4, 0.5)):
    top = corruptions.corruption_rng('half_patch', 'k').random() < 0.5
    np.testing.assert_array_equal(
        corruptions.corrupt(f, 'half_patch', s, 'k'),
        _ref_half_patch(f, p, top))


def test_half_patch_commutes_with_the_cut():
  """Post-cut placement equals RG's uncut 64×64 placement (rows only)."""
  from gait_jax.data import transforms  # pylint: disable=g-import-not-at-top
  f = _walker(7, length=15, width=64)
  for p in (0.1, 0.37, 0.6):
    for top in (True, False):
      np.testing.assert_array_equal(
          transforms.cut_width(occlusion.half_patch(f, p, top)),
          occlusion.half_patch(transforms.cut_width(f), p, top))
