"""Tests for the wild (Gait3D-style) synthetic renderer and dataset."""

import dataclasses
import re

import numpy as np
import pytest

from data_prep import tfds_writer
from data_prep.synthetic import render
from data_prep.synthetic import wild
from data_prep.synthetic import wild_dataset
from data_prep.synthetic import wild_nuisance
from gait_jax.data.source import GaitSource

PERSON = render.sample_identity(np.random.default_rng(11))
WARDROBE = wild.sample_wardrobe(np.random.default_rng(12))
CLEAN = wild.WildConfig.clean(azimuth=1.0)  # random views, no nuisance
SEEDS = range(16)


def _seq(config, seed=0, frames=40):
  return wild.render_wild_sequence(PERSON, WARDROBE, frames, (seed,), config)


def _changed_frames(on, off, hit):
  """Checks that exactly the `hit` rendered frames change in the output.

  Returns:
    The share of the hit frames (kept in both) whose output differs.
  """
  a, b = dict(zip(on.kept, on.frames)), dict(zip(off.kept, off.frames))
  common = sorted(set(a) & set(b))
  for t in common:
    if not hit[t]:
      np.testing.assert_array_equal(a[t], b[t])
  diff = [not np.array_equal(a[t], b[t]) for t in common if hit[t]]
  return np.mean(diff) if diff else 1.0


def _pair(seed, **knobs):
  """(knob on, knob off) renders of the same person, walk and camera."""
  return (_seq(dataclasses.replace(CLEAN, **knobs), seed),
          _seq(CLEAN, seed))


def test_clean_render_is_binary_normalised_and_complete():
  seq = _seq(wild.WildConfig.clean(), frames=30)
  frames = seq.frames
  assert frames.dtype == np.uint8 and frames.shape == (30, 64, 64)
  assert set(np.unique(frames)) == {0, 255}
  fg = frames > 0
  # Like OpenGait's pretreatment: full height, mass median in column 32.
  assert fg[:, 0].any(1).all() and fg[:, -1].any(1).all()
  mass = np.cumsum(fg.sum(1), -1)
  assert (np.argmax(mass > mass[:, -1:] / 2, -1) == 32).all()
  assert not seq.occluder.any() and not seq.outside.any()
  assert not seq.dropped.any() and (seq.kept == np.arange(30)).all()
  np.testing.assert_array_equal(seq.azimuth, 90.0)  # side view, no turn
  assert seq.info['body_rows'] == 64 and seq.info['elevation'] == 0


def test_knob_at_zero_removes_only_its_nuisance():
  full = wild.WildConfig(occlusion=3.0, border=4.0)
  on = _seq(full, 3)
  for knob, record in (('occlusion', 'occluder'), ('border', 'outside'),
                       ('seg_noise', 'dropped')):
    off = _seq(dataclasses.replace(full, **{knob: 0.0}), 3)
    assert getattr(on, record).any() and not getattr(off, record).any()
    for other in {'occluder', 'outside', 'dropped'} - {record}:
      # Every nuisance draws from its own stream: the others are unchanged.
      np.testing.assert_array_equal(getattr(on, other), getattr(off, other))
    np.testing.assert_array_equal(on.azimuth, off.azimuth)


def test_occlusion_removes_pixels_inside_the_occluder():
  occluded_share, with_occluder = [], 0
  for seed in SEEDS:
    on, off = _pair(seed, occlusion=3.0)  # chance min(1, 0.35 * 3) = 1
    assert on.occluder.any()
    # Exactly the occluder's pixels of the body go, nothing else changes.
    np.testing.assert_array_equal(on.canvas, off.canvas & ~on.occluder)
    hit = (off.canvas & on.occluder).any((1, 2))  # [T] frames it covers
    occluded_share.append(hit.mean())
    assert _changed_frames(on, off, hit) > 0.8
    with_occluder += _pair(seed, occlusion=1.0)[0].occluder.any()
  # Part of the body for part of the sequence (30-80 % crossing time).
  assert 0.2 < np.mean(occluded_share) < 0.9
  assert np.mean([0 < s < 1 for s in occluded_share]) > 0.7
  # At strength 1 about 35 % of the sequences have an occluder.
  assert 1 <= with_occluder <= 11


def test_border_cuts_the_body_at_the_frame_edge():
  cut_share = []
  for seed in SEEDS:
    on, off = _pair(seed, border=4.0)  # chance 1
    np.testing.assert_array_equal(on.canvas, off.canvas & ~on.outside)
    cut = (off.canvas & on.outside).any((1, 2))  # [T]
    assert cut.any() and not cut.all()
    cut_share.append(cut.mean())
    # In cut frames the visible body touches the frame edge.
    edge = wild_nuisance._shift_or(on.outside[cut]) & ~on.outside[cut]  # pylint: disable=protected-access
    assert (edge & on.canvas[cut]).any((1, 2)).mean() > 0.9
    assert _changed_frames(on, off, cut) > 0.8
  assert 0.1 < np.mean(cut_share) < 0.8


def test_seg_noise_adds_removes_pixels_and_drops_frames():
  gained = lost = shorter = 0
  for seed in SEEDS:
    on, off = _pair(seed, seg_noise=3.0)
    gained += int(np.sum(on.canvas & ~off.canvas))  # blobs, dilation
    lost += int(np.sum(off.canvas & ~on.canvas))  # holes, erosion
    assert len(on.frames) == len(on.kept) <= 40
    assert not np.isin(np.flatnonzero(on.dropped), on.kept).any()
    shorter += len(on.frames) < len(off.frames)
    assert len(off.frames) == 40
    changed = (on.canvas != off.canvas).any((1, 2)).mean()
    assert changed > 0.3
  assert gained > 0 and lost > 0
  assert shorter >= len(SEEDS) // 2
  # Holes open inside the body: frames with fewer pixels than the clean one.
  on, off = _pair(0, seg_noise=3.0)
  assert (on.canvas.sum((1, 2)) < off.canvas.sum((1, 2))).any()


def _width(frames):
  return (frames > 0).any(1).sum(-1).astype(float)  # [T] columns used


def test_view_change_turns_the_path_and_the_width_profile():
  straight, turning = [], []
  for seed in range(12):
    on, off = _pair(seed, view_change=2.0)
    seq = _seq(dataclasses.replace(CLEAN, view_change=2.0), seed, 108)
    flat = _seq(CLEAN, seed, 108)
    assert np.ptp(flat.azimuth) == 0 and np.ptp(seq.azimuth) > 20
    assert np.ptp(on.azimuth) > 0 and np.ptp(off.azimuth) == 0
    # Mean width over the first vs the last gait cycle (about 27 frames).
    for out, s in ((turning, seq), (straight, flat)):
      w = _width(s.frames)
      out.append(abs(w[:27].mean() - w[-27:].mean()))
  assert np.mean(turning) > 3 * np.mean(straight) + 2


@pytest.mark.parametrize('knob', ['elevation', 'distance', 'perspective',
                                  'gait_jitter', 'clothing', 'carrying',
                                  'azimuth'])
def test_other_knobs_change_the_frames(knob):
  base = wild.WildConfig.clean()
  wardrobe = dict(WARDROBE, coat_rate=0.5, bag_rate=0.5)
  changed = 0
  for seed in range(6):
    on, off = (wild.render_wild_sequence(PERSON, wardrobe, 40, (seed,), c)
               for c in (dataclasses.replace(base, **{knob: 1.0}), base))
    changed += not np.array_equal(on.frames, off.frames)
    if knob == 'distance':  # far people are fewer pixels tall
      assert on.info['body_rows'] <= off.info['body_rows'] == 64
    if knob in ('clothing', 'carrying'):
      assert off.info['condition'] == 'nm'
      assert on.info['condition'] != 'nm' or np.array_equal(on.frames,
                                                            off.frames)
  assert changed >= (2 if knob in ('clothing', 'carrying') else 5)


def test_deterministic_from_seed():
  config = wild.WildConfig()
  a = _seq(config, 5)
  assert a.frames.tobytes() == _seq(config, 5).frames.tobytes()
  assert a.frames.tobytes() != _seq(config, 6).frames.tobytes()
  tiny = TINY
  key = ('0003',) + wild_dataset.sequence_plan(tiny, '0003')[0][:2]
  np.testing.assert_array_equal(wild_dataset.render_example(tiny, *key),
                                wild_dataset.render_example(tiny, *key))
  other = dataclasses.replace(tiny, seed=1)
  assert wild_dataset.sequence_plan(other, '0003') != (
      wild_dataset.sequence_plan(tiny, '0003'))


TINY = wild_dataset.WildDatasetConfig(
    num_subjects=5, num_train_subjects=3, min_sequences=2, max_sequences=3,
    min_frames=10, max_frames=16, mean_frames=12)


def test_config_validation():
  with pytest.raises(ValueError, match='num_train_subjects'):
    dataclasses.replace(TINY, num_train_subjects=5)
  with pytest.raises(ValueError, match='min_sequences'):
    dataclasses.replace(TINY, min_sequences=1)
  with pytest.raises(ValueError, match='occlusion'):
    wild.WildConfig(occlusion=-1)
  as_dict = dataclasses.replace(TINY, wild={'occlusion': 0.5})
  assert as_dict.wild == wild.WildConfig(occlusion=0.5)


def test_naming_and_probe_set():
  config = dataclasses.replace(wild_dataset.WildDatasetConfig(),
                               num_subjects=30, num_train_subjects=18)
  assert config.subjects[:2] == ['0000', '0001']
  keys = {}
  for subject in config.subjects:
    plan = wild_dataset.sequence_plan(config, subject)
    assert 6 <= len(plan) <= 10
    assert len({(t, v) for t, v, _ in plan}) == len(plan)
    for seq_type, view, length in plan:
      assert re.fullmatch(r'camid\d+_videoid\d+', seq_type)
      assert re.fullmatch(r'seq\d+', view)
      assert 10 <= length <= 150
      keys[f'{subject}-{seq_type}-{view}'] = subject
  probes = wild_dataset.probe_set(config)
  assert probes == sorted(probes) and all(p in keys for p in probes)
  assert sorted(keys[p] for p in probes) == config.test_subjects
  lengths = [n for s in config.subjects
             for _, _, n in wild_dataset.sequence_plan(config, s)]
  assert 30 < np.mean(lengths) < 50


def test_build_dataset_loads_via_gait_source(tmp_path):
  out = wild_dataset.build_wild_dataset(str(tmp_path), TINY, num_workers=1)
  meta = tfds_writer.read_gait_metadata(out)
  assert meta['protocol'] == 'gait3d'
  assert meta['train_subjects'] == ['0000', '0001', '0002']
  assert meta['test_subjects'] == ['0003', '0004']
  assert meta['protocol_options'] == {
      'probe_set': wild_dataset.probe_set(TINY)}
  for split, subjects in (('train', TINY.train_subjects),
                          ('test', TINY.test_subjects)):
    source = GaitSource(out, split)
    assert source.train_classes() == subjects
    keys = {'-'.join(k) for k in zip(source.subjects, source.types,
                                     source.views)}
    want = {f'{s}-{t}-{v}' for s in subjects
            for t, v, _ in wild_dataset.sequence_plan(TINY, s)}
    assert keys == want
    if split == 'test':
      assert set(meta['protocol_options']['probe_set']) <= keys
      i = 0
      np.testing.assert_array_equal(source.frames(i), (
          wild_dataset.render_example(TINY, source.subjects[i],
                                      source.types[i], source.views[i])))
      assert (source.lengths >= 1).all()
  assert set(meta['views']) >= {'seq0'}
  # Same config: reused as is; another config: a clear error.
  assert wild_dataset.build_wild_dataset(str(tmp_path), TINY) == out
  with pytest.raises(tfds_writer.DatasetExistsError,
                     match=r'seed: stored 0, requested 1.*delete'):
    wild_dataset.build_wild_dataset(str(tmp_path),
                                    dataclasses.replace(TINY, seed=1))
  from data_prep.synthetic import preview  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'strip.png'
  preview.save_sequence_strip(out, str(path), num_sequences=2)
  assert path.stat().st_size > 1000


def test_worker_processes_give_identical_data(tmp_path, monkeypatch):
  monkeypatch.setattr(wild_dataset, 'MIN_POOL_SEQUENCES', 1)
  config = dataclasses.replace(TINY, num_subjects=2, num_train_subjects=1,
                               max_sequences=2)
  out = wild_dataset.build_wild_dataset(str(tmp_path), config,
                                        num_workers=2)
  source = tfds_writer.open_gait_source(out, 'train')
  for i in range(len(source)):
    rec = source[i]
    np.testing.assert_array_equal(rec['frames'], wild_dataset.render_example(
        config, rec['subject'].decode(), rec['type'].decode(),
        rec['view'].decode()))
