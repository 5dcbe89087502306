"""Frame samplers of the in-the-wild recipes: fixed_ordered with a skip, and
unfixed_unordered with a frame-count range, padded and masked in the batch.

The references are OpenGait's collate_fn.py written out with NumPy, independently
of ``gait_jax.data.sampling``; they consume the generator in the spec's order
(window start, then the kept positions; frame count, then the frames), so with
the same generator they must give exactly the same indices.
"""

import collections
import dataclasses
import math

import numpy as np
import pytest

from conftest import blob_sequence
from gait_jax import config as config_lib
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms


# --- The spec, in NumPy.


def _ref_fixed_ordered(rng, length, num, skip):
  """OpenGait's fixed_ordered: window W = F + k over the (tiled) index list."""
  window = num + skip
  base = list(range(length))
  if length < window:
    base = base * math.ceil(window / length)  # L' = L * ceil(W / L)
  start = int(rng.integers(0, len(base) - window + 1))  # {0..L'-W}
  kept = sorted(rng.choice(np.arange(window), num, replace=False).tolist())
  return np.array([base[start + p] for p in kept])


def _ref_unfixed_unordered(rng, length, low, high):
  """OpenGait's unfixed_unordered: F ~ U{min..max}, then fixed_unordered."""
  num = int(rng.integers(low, high + 1))
  return rng.choice(np.arange(length), num, replace=length < num)


def _is_window_subsequence(idx, length, num, skip):
  """Whether idx = tiled[s + kept] for some start s and sorted kept set."""
  window = num + skip
  reps = math.ceil(window / length) if length < window else 1
  tiled = np.tile(np.arange(length), reps)
  for s in range(len(tiled) - window + 1):
    it = iter(tiled[s:s + window].tolist())
    if all(any(v == w for w in it) for v in idx.tolist()):
      return True
  return False


# --- fixed_ordered with frames_skip.


@pytest.mark.parametrize('length,num,skip', [
    (100, 30, 4), (34, 30, 4), (33, 30, 4), (20, 30, 4), (7, 30, 4),
    (1, 30, 4), (50, 10, 4), (12, 10, 4), (80, 30, 10), (5, 3, 0)])
def test_fixed_ordered_matches_the_spec_exactly(length, num, skip):
  for row in range(40):
    got = sampling.sample_frames(sampling.frame_rng(3, 7, row), length,
                                 'fixed_ordered', num, skip)
    want = _ref_fixed_ordered(sampling.frame_rng(3, 7, row), length, num,
                              skip)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (num,) and got.min() >= 0 and got.max() < length
    assert _is_window_subsequence(got, length, num, skip)


def test_fixed_ordered_keeps_order_and_drops_k_positions():
  rng = np.random.default_rng(0)
  # L >= W: strictly increasing, inside one window of 34 frames.
  for _ in range(300):
    idx = sampling.sample_frames(rng, 100, 'fixed_ordered', 30, 4)
    assert np.all(np.diff(idx) > 0) and idx[-1] - idx[0] <= 33
  # L = W: the window is the whole sequence, exactly 4 of the 34 frames are
  # dropped, each frame with probability 4/34.
  kept = np.zeros(34)
  n = 3000
  for _ in range(n):
    idx = sampling.sample_frames(rng, 34, 'fixed_ordered', 30, 4)
    assert len(set(idx.tolist())) == 30
    kept[idx] += 1
  np.testing.assert_allclose(kept / n, 30 / 34,
                             atol=4 * math.sqrt(30 / 34 * 4 / 34 / n))
  # Window starts are uniform over {0..L'-W}: with k = 0 the first index is
  # the start.
  starts = collections.Counter(
      int(sampling.sample_frames(rng, 40, 'fixed_ordered', 30, 0)[0])
      for _ in range(2200))
  assert sorted(starts) == list(range(11))
  assert max(abs(c / 2200 - 1 / 11) for c in starts.values()) < 0.03


def test_fixed_ordered_short_sequences_wrap_around():
  rng = np.random.default_rng(1)
  # L = 10 < W = 34: the list 0..9 is tiled 4 times (L' = 40), so the window
  # starts in {0..6} and its indices wrap around 9 -> 0.
  wrapped = 0
  for _ in range(200):
    idx = sampling.sample_frames(rng, 10, 'fixed_ordered', 30, 4)
    steps = np.diff(idx) % 10  # Forward steps along the tiled list.
    assert np.all((steps >= 1) & (steps <= 5))  # At most 4 dropped in a row.
    wrapped += np.sum(np.diff(idx) < 0)
    # 30 of 34 tiled positions: no frame appears more than 4 times.
    assert np.bincount(idx, minlength=10).max() <= 4
  assert wrapped >= 3 * 200  # 34 positions of a 10-list: >= 3 wraps.


# --- unfixed_unordered.


@pytest.mark.parametrize('length,low,high', [
    (100, 10, 50), (30, 10, 50), (5, 10, 50), (40, 20, 40), (1, 1, 3),
    (7, 7, 7)])
def test_unfixed_unordered_matches_the_spec_exactly(length, low, high):
  for row in range(40):
    got = sampling.sample_frames(sampling.frame_rng(5, 2, row), length,
                                 'unfixed_unordered',
                                 frames_range=(low, high))
    want = _ref_unfixed_unordered(sampling.frame_rng(5, 2, row), length, low,
                                  high)
    np.testing.assert_array_equal(got, want)
    assert low <= len(got) <= high
    assert got.min() >= 0 and got.max() < length
    if len(got) <= length:  # Without replacement iff L >= F.
      assert len(set(got.tolist())) == len(got)


def test_unfixed_frame_count_is_uniform_and_replacement_iff_short():
  n = 4100
  counts = collections.Counter()
  dup_when_short = short = 0
  unsorted = 0
  for i in range(n):
    idx = sampling.sample_frames(sampling.frame_rng(0, i // 64, i % 64), 30,
                                 'unfixed_unordered', frames_range=(10, 50))
    f = len(idx)
    counts[f] += 1
    unsorted += not np.all(np.diff(idx) > 0)
    if f > 30:  # L < F: with replacement, necessarily duplicates.
      short += 1
      dup_when_short += len(set(idx.tolist())) < f
      assert set(idx.tolist()) <= set(range(30))
    else:
      assert len(set(idx.tolist())) == f
  assert sorted(counts) == list(range(10, 51))  # Both ends reached.
  expected = n / 41
  chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
  assert chi2 < 80  # 40 degrees of freedom: p < 1e-4 beyond 80.
  assert dup_when_short == short > 0
  assert unsorted > 0.9 * n  # Random order.


def test_bad_frame_ranges_name_the_key():
  rng = np.random.default_rng(0)
  for bad in (None, (0, 5), (6, 5), (3,), (1.0, 5), (True, 5), '3,5', 7):
    with pytest.raises(ValueError, match=r'data\.frames_range='):
      sampling.sample_frames(rng, 10, 'unfixed_unordered', frames_range=bad)
  assert sampling.check_frames_range(np.array([2, 4])) == (2, 4)


# --- The padded batch.


class _FakeSource:
  """In-memory sequences of 3..24 frames."""

  def __init__(self, num_subjects=6, per_subject=4):
    self.sequences = [blob_sequence(s, t, t % 2, 3 + (5 * s + 3 * t) % 22)
                      for s in range(num_subjects) for t in range(per_subject)]
    self.subject_indices = [list(range(s * per_subject, (s + 1) * per_subject))
                            for s in range(num_subjects)]

  def frames_many(self, indices):
    return [self.sequences[i] for i in indices]

  def frames(self, index):
    return self.sequences[index]

  def __len__(self):
    return len(self.sequences)

  @property
  def lengths(self):
    return np.array([len(s) for s in self.sequences])


def _loader(source, seed=3, frames_range=(4, 9), **kw):
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=seed,
                               batch_shuffle=True)
  return pipeline.TrainBatchLoader(
      source, sampler, frame_sampler='unfixed_unordered',
      num_frames=frames_range[1], frames_range=frames_range, **kw)


def test_padded_batch_and_mask():
  source = _FakeSource()
  loader = _loader(source)
  lengths = set()
  for step in range(6):
    got = loader(step)
    sils, mask = got['sils'], got['mask']
    assert sils.shape == (8, 9, 64, 44) and sils.dtype == np.uint8
    assert mask.shape == (8, 9) and mask.dtype == bool
    batch = loader.sampler(step)
    for row, record in enumerate(batch.indices):
      frames = source.sequences[record]
      want = _ref_unfixed_unordered(sampling.frame_rng(3, step, row),
                                    len(frames), 4, 9)
      f = len(want)
      lengths.add(f)
      np.testing.assert_array_equal(mask[row], np.arange(9) < f)  # Prefix.
      np.testing.assert_array_equal(sils[row, :f],
                                    transforms.cut_width(frames[want]))
      assert not sils[row, f:].any()  # Zero padding.
    np.testing.assert_array_equal(got['labels'], batch.labels)
  assert len(lengths) >= 4  # Rows of one batch differ in length.


def test_fixed_samplers_mask_is_all_true():
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=0)
  for mode, skip in (('fixed_unordered', 0), ('fixed_ordered', 4)):
    got = pipeline.TrainBatchLoader(source, sampler, frame_sampler=mode,
                                    num_frames=6, frames_skip=skip)(1)
    assert got['mask'].shape == (8, 6) and got['mask'].all()


def test_batch_is_a_function_of_seed_step_and_row():
  source = _FakeSource()
  one, again = _loader(source), _loader(source)
  hosts = [_loader(source, process_index=i, process_count=2) for i in (0, 1)]
  outputs = {}
  for step in (4, 0, 9, 4):  # Any call order: no hidden state.
    want = one(step)
    outputs.setdefault(step, want)
    for key in ('sils', 'mask', 'labels'):
      np.testing.assert_array_equal(again(step)[key], want[key])
      np.testing.assert_array_equal(outputs[step][key], want[key])
      np.testing.assert_array_equal(
          np.concatenate([h(step)[key] for h in hosts]), want[key])
  assert not np.array_equal(one(0)['mask'], one(9)['mask'])
  assert not np.array_equal(one(0)['sils'], _loader(source, seed=4)(0)['sils'])


def test_loader_validates_the_range():
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=0)
  with pytest.raises(ValueError, match=r'data\.frames_range=None'):
    pipeline.TrainBatchLoader(source, sampler,
                              frame_sampler='unfixed_unordered')
  with pytest.raises(ValueError, match=r'data\.num_frames=30 must equal'):
    pipeline.TrainBatchLoader(source, sampler, num_frames=30,
                              frame_sampler='unfixed_unordered',
                              frames_range=(10, 50))
  with pytest.raises(ValueError, match='unfixed_unordered'):
    pipeline.TrainBatchLoader(source, sampler, frame_sampler='all_ordered')


def test_loader_from_config():
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=0)
  c = config_lib.base_config()
  c.lock()
  c.data.frame_sampler = 'unfixed_unordered'
  c.data.frames_range = (3, 6)
  c.data.num_frames = 6
  c.data.augment.hflip_prob = 0.5
  loader = pipeline.TrainBatchLoader.from_config(c.data, source, sampler)
  assert loader.frames_range == (3, 6) and loader.num_frames == 6
  assert [op.name for op in loader.augment.ops] == ['hflip']
  assert loader(0)['mask'].shape == (8, 6)
  # The default config still builds the old fixed_unordered loader.
  plain = pipeline.TrainBatchLoader.from_config(
      config_lib.base_config().data, source, sampler)
  assert plain.frame_sampler == 'fixed_unordered' and not plain.augment


# --- configs/common.py.


def _common():
  from configs import common  # pylint: disable=g-import-not-at-top
  return common


def _build(common, arg='', **kw):
  recipe = dict(model='gaitbase', dataset='casia_b', optim=common.sgd(),
                schedule=common.multistep(20_000, 40_000, 50_000),
                num_steps=60_000, pk=(32, 4), batch_shuffle=True,
                eval_batch_size=16)
  recipe.update(kw)
  return common.build(arg, **recipe)


def test_build_unfixed_range_and_smoke():
  common = _common()
  c = _build(common, sampler='unfixed_unordered', frames_range=(10, 50))
  assert c.data.frame_sampler == 'unfixed_unordered'
  assert tuple(c.data.frames_range) == (10, 50) and c.data.num_frames == 50
  smoke = _build(common, 'smoke', sampler='unfixed_unordered',
                 frames_range=(20, 40))
  assert tuple(smoke.data.frames_range) == (4, 8)
  assert smoke.data.num_frames == 8
  ordered = _build(common, 'smoke', sampler='fixed_ordered', frames_skip=4,
                   num_frames=10)
  assert (ordered.data.num_frames, ordered.data.frames_skip) == (8, 4)
  full = _build(common, sampler='fixed_ordered', frames_skip=4, num_frames=10)
  assert (full.data.num_frames, tuple(full.data.frames_range)) == (10, (0, 0))
  for kw in (dict(sampler='unfixed_unordered'),
             dict(sampler='fixed_ordered', frames_range=(10, 50))):
    with pytest.raises(ValueError, match='frames_range'):
      _build(common, **kw)
  with pytest.raises(ValueError, match=r'data\.frames_range'):
    _build(common, sampler='unfixed_unordered', frames_range=(50, 10))
  # Both configs make valid loaders.
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=0)
  for cfg in (c, smoke):
    pipeline.TrainBatchLoader.from_config(cfg.data, source, sampler)


def test_uncut_frames_when_cut_width_is_off():
  """``data.cut_width=False`` (BaseSilTransform): whole 64×64 frames in
  training and evaluation batches; the model input shape follows."""
  from gait_jax import experiment  # pylint: disable=g-import-not-at-top
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=0)
  c = config_lib.base_config()
  c.lock()
  c.data.frame_sampler = 'fixed_ordered'
  c.data.num_frames = 5
  c.data.cut_width = False
  loader = pipeline.TrainBatchLoader.from_config(c.data, source, sampler)
  cut = dataclasses.replace(loader, cut=True)
  whole, part = loader(2), cut(2)
  assert whole['sils'].shape == (8, 5, 64, 64)
  assert part['sils'].shape == (8, 5, 64, 44)
  np.testing.assert_array_equal(transforms.cut_width(whole['sils']),
                                part['sils'])
  assert experiment.input_shape(c) == (64, 64)
  assert experiment.input_shape(config_lib.base_config()) == (64, 44)
  for cut_flag, width in ((False, 64), (True, 44)):
    batches = list(pipeline.eval_batches(source, batch_size=4, buckets=(16,),
                                         cut=cut_flag))
    assert {b.sils.shape[-1] for b in batches} == {width}
    for b in batches:
      for row, i in enumerate(b.indices):
        if i >= 0:
          seq = source.sequences[i]
          want = seq if not cut_flag else transforms.cut_width(seq)
          np.testing.assert_array_equal(b.sils[row, :len(seq)], want)
  # ml_collections keeps the key a bool; other callers are checked.
  with pytest.raises(ValueError, match="data.cut_width='no'"):
    dataclasses.replace(loader, cut='no')
  with pytest.raises(ValueError, match='data.cut_width=1'):
    transforms.check_cut(1)
