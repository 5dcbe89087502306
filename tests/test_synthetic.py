"""Tests for the synthetic walking-silhouette renderer and dataset."""

import dataclasses

import numpy as np
import pytest

from data_prep import tfds_writer
from data_prep.synthetic import dataset
from data_prep.synthetic import raster
from data_prep.synthetic import render

MEAN = render.mean_identity()
STILL = render.Nuisance(speed_jitter=0.0, view_jitter_deg=0.0,
                        elevation_jitter_deg=0.0, aspect_jitter=0.0)


def _render(params=None, condition='nm', view=90.0, frames=12, seed=0,
            **kwargs):
  return render.render_sequence(MEAN if params is None else params,
                                condition, view, frames,
                                np.random.default_rng(seed), **kwargs)


def _person(subject_seed):
  return render.sample_identity(np.random.default_rng(subject_seed))


def test_output_is_binary_normalised_frames():
  frames = _render(condition=render.Condition('bg', bag='hand'), frames=7)
  assert frames.dtype == np.uint8 and frames.shape == (7, 64, 64)
  assert set(np.unique(frames)) == {0, 255}
  fg = frames > 0
  # Like OpenGait's pretreatment: full height, mass median in column 32.
  assert fg[:, 0].any(1).all() and fg[:, -1].any(1).all()
  mass = np.cumsum(fg.sum(1), -1)
  assert (np.argmax(mass > mass[:, -1:] / 2, -1) == 32).all()


def test_single_frame_and_bad_length():
  assert _render(frames=1).shape == (1, 64, 64)
  with pytest.raises(ValueError, match='num_frames'):
    _render(frames=0)


def test_deterministic_from_seed():
  person = _person(3)
  a = _render(person, 'cl-01', 36.0, seed=7)
  np.testing.assert_array_equal(a, _render(person, 'cl-01', 36.0, seed=7))
  assert not np.array_equal(a, _render(person, 'cl-01', 36.0, seed=8))
  np.testing.assert_array_equal(render.sample_identity(
      np.random.default_rng(5), 0.0), MEAN)


def _differs(a, b, min_fraction=0.02):
  """At least min_fraction of the foreground pixels differ."""
  return np.sum(a != b) > min_fraction * np.sum(a > 0)


def test_identities_conditions_and_views_differ():
  base = _render(_person(1))
  assert _differs(base, _render(_person(2)))
  assert _differs(base, _render(_person(1), 'cl'))
  assert _differs(base, _render(_person(1), render.Condition(
      'bg', bag='backpack')))
  assert _differs(base, _render(_person(1), view=72.0))
  assert _differs(_render(view=0.0), _render(view=180.0))  # front vs back


def _area(frames):
  return np.sum(frames > 0)


def _row_width(frames, rows):
  """Mean number of foreground pixels in the given rows."""
  return np.mean(np.sum(frames[:, rows] > 0, -1))


@pytest.mark.parametrize('view', [0.0, 90.0])
def test_coat_widens_torso_and_thighs(view):
  nm = _render(view=view, nuisance=STILL)
  cl = _render(condition=render.Condition('cl'), view=view, nuisance=STILL)
  assert _area(cl) > 1.15 * _area(nm)
  hips_to_knees = slice(28, 46)
  assert _row_width(cl, hips_to_knees) > 1.2 * _row_width(nm, hips_to_knees)
  # The feet stay visible below the coat.
  assert _row_width(cl, slice(60, 64)) > 0


@pytest.mark.parametrize('bag, view', [('backpack', 90.0),
                                       ('shoulder', 0.0), ('hand', 0.0)])
def test_bag_adds_to_the_silhouette(bag, view):
  nm = _render(view=view, nuisance=STILL)
  bg = _render(condition=render.Condition('bg', bag=bag), view=view,
               nuisance=STILL)
  assert _area(bg) > 1.04 * _area(nm)
  width = lambda f: np.mean(np.sum((f > 0).any(1), -1))  # extent per frame
  assert width(bg) > width(nm)


def test_gait_cycle_is_periodic():
  # Side view, no speed jitter: the feet spread apart twice per gait cycle.
  cadence = 26.0
  person = dict(MEAN, cadence=cadence)
  frames = _render(person, frames=2 * int(cadence), nuisance=STILL)
  feet = (frames[:, -12:] > 0).any(1)  # [T, W] columns touched by the legs
  spread = np.array([np.ptp(np.nonzero(c)[0]) for c in feet], float)
  assert spread.max() > 2 * spread.min()
  x = spread - spread.mean()
  corr = lambda lag: np.corrcoef(x[:-lag], x[lag:])[0, 1]
  assert corr(13) > 0.8  # half a cycle: the other step
  assert corr(7) < -0.5  # a quarter cycle: legs together vs apart


def test_cone_spans_match_brute_force():
  rng = np.random.default_rng(0)
  k = 60
  a, b = rng.uniform(-1, 1, (2, 1, k, 2)).astype(np.float32)
  ra, rb = rng.uniform(0.05, 0.5, (2, 1, k)).astype(np.float32)
  y = np.linspace(-1.6, 1.6, 41, dtype=np.float32)[None]
  lo, hi = raster._cone_spans(a, b, ra, rb, y)  # pylint: disable=protected-access
  s = np.linspace(0, 1, 4001)[:, None]
  for i in range(k):  # the hull of two discs = union of interpolated discs
    c = a[0, i] + s * (b[0, i] - a[0, i])  # [S, 2]
    r = ra[0, i] + s[:, 0] * (rb[0, i] - ra[0, i])
    h2 = r[:, None] ** 2 - (y[0][None, :] - c[:, 1:2]) ** 2  # [S, H]
    half = np.sqrt(np.maximum(h2, 0))
    want_lo = np.where(h2 >= 0, c[:, :1] - half, np.inf).min(0)
    want_hi = np.where(h2 >= 0, c[:, :1] + half, -np.inf).max(0)
    hit = np.isfinite(want_lo)
    np.testing.assert_array_equal(np.isfinite(lo[0, i]), hit)
    np.testing.assert_allclose(lo[0, i][hit], want_lo[hit], atol=2e-3)
    np.testing.assert_allclose(hi[0, i][hit], want_hi[hit], atol=2e-3)


TINY = dataset.SyntheticConfig(
    num_subjects=3, num_train_subjects=2, views=('000', '090'),
    types=('nm-01', 'bg-01', 'cl-01'), min_frames=3, max_frames=6)


def test_config_validation():
  with pytest.raises(ValueError, match='num_train_subjects'):
    dataclasses.replace(TINY, num_train_subjects=3)
  with pytest.raises(ValueError, match="'xx-01'"):
    dataclasses.replace(TINY, types=('xx-01',))
  with pytest.raises(ValueError, match='min_frames'):
    dataclasses.replace(TINY, min_frames=9)


def test_build_dataset_contents_and_reuse(tmp_path):
  out = dataset.build_synthetic_dataset(str(tmp_path), TINY, num_workers=1)
  meta = tfds_writer.read_gait_metadata(out)
  assert meta['protocol'] == 'casia_b'
  assert meta['train_subjects'] == ['001', '002']
  assert meta['test_subjects'] == ['003']
  assert meta['views'] == ['000', '090'] and len(meta['types']) == 3
  assert meta['report']['sequences'] == 18
  for split, subjects in (('train', ['001', '002']), ('test', ['003'])):
    index = tfds_writer.read_index(out, split)
    keys = {(r['subject'], r['type'], r['view']) for r in index}
    assert keys == {(s, t, v) for s in subjects for t in TINY.types
                    for v in TINY.views}
    assert all(3 <= r['length'] <= 6 for r in index)
  # Stored frames are exactly what the renderer gives for that key.
  source = tfds_writer.open_gait_source(out, 'test')
  rec = source[0]
  np.testing.assert_array_equal(rec['frames'], dataset.render_example(
      TINY, rec['subject'].decode(), rec['type'].decode(),
      rec['view'].decode()))
  # Same config: reused as is. Another config: a clear error.
  assert dataset.build_synthetic_dataset(str(tmp_path), TINY) == out
  with pytest.raises(tfds_writer.DatasetExistsError,
                     match=r'seed: stored 0, requested 1.*delete'):
    dataset.build_synthetic_dataset(str(tmp_path),
                                    dataclasses.replace(TINY, seed=1))


def test_worker_processes_give_identical_data(tmp_path, monkeypatch):
  monkeypatch.setattr(dataset, 'MIN_POOL_SEQUENCES', 1)
  config = dataclasses.replace(TINY, num_subjects=2, num_train_subjects=1,
                               types=('nm-01', 'cl-01'), max_frames=4)
  out = dataset.build_synthetic_dataset(str(tmp_path), config,
                                        num_workers=2)
  source = tfds_writer.open_gait_source(out, 'train')
  for i in range(len(source)):
    rec = source[i]
    np.testing.assert_array_equal(rec['frames'], dataset.render_example(
        config, rec['subject'].decode(), rec['type'].decode(),
        rec['view'].decode()))


def test_preview_is_written(tmp_path):
  out = dataset.build_synthetic_dataset(str(tmp_path), TINY, num_workers=1)
  from data_prep.synthetic import preview  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'preview.png'
  preview.save_preview(out, str(path))
  assert path.stat().st_size > 1000
