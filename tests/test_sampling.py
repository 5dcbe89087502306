"""The P×K batch sampler and the frame samplers."""

import collections

import numpy as np
import pytest

from gait_jax.data import sampling


def _subjects(counts):
  """Class c owns record indices [start_c, start_c + counts[c])."""
  out, start = [], 0
  for n in counts:
    out.append(list(range(start, start + n)))
    start += n
  return out


def _owner(subject_indices):
  return {i: c for c, idx in enumerate(subject_indices) for i in idx}


@pytest.mark.parametrize('shuffle', [False, True])
def test_pk_structure(shuffle):
  subj = _subjects([20, 3, 17, 9, 30, 11, 2, 8])
  owner = _owner(subj)
  sampler = sampling.PKSampler(subj, p=5, k=4, seed=3, batch_shuffle=shuffle)
  for step in range(50):
    batch = sampler(step)
    assert batch.indices.shape == batch.labels.shape == (20,)
    # Every record belongs to the class it is labelled with.
    assert [owner[i] for i in batch.indices] == batch.labels.tolist()
    counts = collections.Counter(batch.labels.tolist())
    assert len(counts) == 5 and set(counts.values()) == {4}
    for c in counts:
      chosen = batch.indices[batch.labels == c]
      if len(subj[c]) >= 4:  # Enough sequences: K distinct ones.
        assert len(set(chosen.tolist())) == 4
    if not shuffle:  # Identity by identity.
      assert all(len(set(batch.labels[r * 4:(r + 1) * 4])) == 1
                 for r in range(5))


def test_short_subject_sampled_with_replacement():
  subj = _subjects([2, 2])
  sampler = sampling.PKSampler(subj, p=2, k=5, seed=0)
  batch = sampler(0)
  for c in (0, 1):
    chosen = batch.indices[batch.labels == c]
    assert len(chosen) == 5 and set(chosen.tolist()) <= set(subj[c])


def test_pk_is_pure_function_of_seed_and_step():
  subj = _subjects([10] * 12)
  a = sampling.PKSampler(subj, p=4, k=3, seed=7, batch_shuffle=True)
  b = sampling.PKSampler(subj, p=4, k=3, seed=7, batch_shuffle=True)
  # Any order of calls gives the same batches (no hidden state).
  for step in [5, 0, 99, 5]:
    np.testing.assert_array_equal(a(step).indices, b(step).indices)
  assert not np.array_equal(a(0).indices, a(1).indices)
  c = sampling.PKSampler(subj, p=4, k=3, seed=8, batch_shuffle=True)
  assert not np.array_equal(a(0).indices, c(0).indices)
  assert repr(a) == repr(b)


def test_class_coverage_is_uniform():
  subj = _subjects([10] * 10)
  sampler = sampling.PKSampler(subj, p=2, k=2, seed=0)
  counts = collections.Counter()
  for step in range(2000):
    counts.update(set(sampler(step).labels.tolist()))
  freq = np.array([counts[c] for c in range(10)]) / 2000
  np.testing.assert_allclose(freq, 0.2, atol=0.04)


def test_host_slices_make_the_global_batch():
  subj = _subjects([10] * 12)
  sampler = sampling.PKSampler(subj, p=4, k=4, seed=1, batch_shuffle=True)
  batch = sampler(3)
  parts = [batch.indices[sampling.host_slice(16, h, 4)] for h in range(4)]
  np.testing.assert_array_equal(np.concatenate(parts), batch.indices)
  with pytest.raises(ValueError, match='not divisible'):
    sampling.host_slice(16, 0, 3)


def test_p_larger_than_subjects_is_a_clear_error():
  with pytest.raises(ValueError, match=r'data\.p=9.*only 3 subjects'):
    sampling.PKSampler(_subjects([5, 5, 5]), p=9, k=2, seed=0)


def test_fixed_unordered():
  rng = np.random.default_rng(0)
  idx = sampling.sample_frames(rng, 100, 'fixed_unordered', 30)
  assert len(idx) == 30 and len(set(idx.tolist())) == 30  # No replacement.
  assert idx.min() >= 0 and idx.max() < 100
  seen_unsorted = False
  for _ in range(20):
    idx = sampling.sample_frames(rng, 100, 'fixed_unordered', 30)
    seen_unsorted |= not np.all(np.diff(idx) > 0)
  assert seen_unsorted  # Random order, as OpenGait's np.random.choice.
  short = sampling.sample_frames(rng, 7, 'fixed_unordered', 30)
  assert len(short) == 30 and set(short.tolist()) <= set(range(7))


def test_fixed_ordered_consecutive_window():
  rng = np.random.default_rng(1)
  starts = set()
  for _ in range(200):
    idx = sampling.sample_frames(rng, 50, 'fixed_ordered', 30, skip=0)
    # skip=0: exactly 30 consecutive frames.
    np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + 30))
    starts.add(int(idx[0]))
  assert starts == set(range(21))  # Every start 0..L-30 is reachable.


def test_fixed_ordered_with_skip_and_short_sequences():
  rng = np.random.default_rng(2)
  for _ in range(100):
    idx = sampling.sample_frames(rng, 80, 'fixed_ordered', 30, skip=10)
    assert len(idx) == 30 and np.all(np.diff(idx) > 0)
    assert idx[-1] - idx[0] < 40  # Inside a window of 30 + skip frames.
  for _ in range(50):
    # L=12 < 30: the index list repeats (0..11, 0..11, 0..11) then a window.
    idx = sampling.sample_frames(rng, 12, 'fixed_ordered', 30, skip=0)
    tiled = np.tile(np.arange(12), 3)
    start = [s for s in range(len(tiled) - 29)
             if np.array_equal(tiled[s:s + 30], idx)]
    assert start, idx


def test_all_ordered_and_unknown_mode():
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(
      sampling.sample_frames(rng, 17, 'all_ordered'), np.arange(17))
  with pytest.raises(ValueError, match='fixed_orderd'):
    sampling.sample_frames(rng, 17, 'fixed_orderd')


def test_frame_rng_depends_on_step_and_position_only():
  a = sampling.frame_rng(0, 5, 3).integers(0, 1 << 30, 4)
  b = sampling.frame_rng(0, 5, 3).integers(0, 1 << 30, 4)
  c = sampling.frame_rng(0, 5, 4).integers(0, 1 << 30, 4)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
