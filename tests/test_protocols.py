"""Tests of gait_jax.evaluation retrieval and protocols: hand-computed cases
and loop references."""

import json

import numpy as np
import pytest

from gait_jax.evaluation import protocols
from gait_jax.evaluation import retrieval


def _loop_distance(probe, gallery, metric):
  """Plain double loop over pairs, float64."""
  probe = probe.astype(np.float64)
  gallery = gallery.astype(np.float64)
  out = np.zeros((len(probe), len(gallery)))
  for i, x in enumerate(probe):
    for j, y in enumerate(gallery):
      if metric == 'euc':
        out[i, j] = np.mean(np.linalg.norm(x - y, axis=-1))
      else:
        cos = np.sum(x * y, -1) / (np.linalg.norm(x, axis=-1)
                                   * np.linalg.norm(y, axis=-1))
        out[i, j] = 1.0 - np.mean(cos)
  return out


@pytest.mark.parametrize('metric', ['euc', 'cos'])
@pytest.mark.parametrize('backend', ['numpy', 'jax'])
def test_part_distance_matches_loop(metric, backend):
  rng = np.random.default_rng(0)
  probe = rng.normal(size=(13, 5, 7)).astype(np.float32)
  gallery = rng.normal(size=(11, 5, 7)).astype(np.float32)
  gallery[3] = probe[2]  # a zero distance (relu guard)
  # A tiny block size forces several blocks (and padding for jax).
  got = retrieval.part_distance(probe, gallery, metric, backend=backend,
                                block_elements=30)
  want = _loop_distance(probe, gallery, metric)
  assert got.dtype == np.float32 and got.shape == (13, 11)
  assert not np.any(np.isnan(got))
  # Equal vectors: |x|^2 + |y|^2 - 2xy cancels in float32 (sqrt of noise).
  assert abs(got[2, 3] - want[2, 3]) < 2e-3
  got[2, 3] = want[2, 3]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_part_distance_is_mean_of_part_distances_not_concat():
  probe = np.array([[[0., 0.], [0., 0.]]], np.float32)  # [1, 2, 2]
  gallery = np.array([[[3., 4.], [0., 0.]]], np.float32)
  # Part 0 distance 5, part 1 distance 0 -> mean 2.5 (concat would give 5).
  assert retrieval.part_distance(probe, gallery)[0, 0] == pytest.approx(2.5)


def test_part_distance_rejects_bad_input():
  x = np.zeros((2, 3, 4), np.float32)
  with pytest.raises(ValueError, match='metric'):
    retrieval.part_distance(x, x, 'l1')
  with pytest.raises(ValueError, match='parts'):
    retrieval.part_distance(x, np.zeros((2, 3, 5), np.float32))


def _grid(subjects, views):
  labels = np.array([s for s in subjects for _ in views])
  vs = np.array([v for _ in subjects for v in views])
  return labels, vs


def test_single_view_rank1_hand_case():
  views = ['000', '018', '036']
  pl, pv = _grid(['a', 'b', 'c'], views)  # 9 probes
  gl, gv = _grid(['a', 'b', 'c'], views)  # 9 gallery items
  dist = np.where(pl[:, None] == gl[None, :], 1.0, 5.0)
  idx = lambda lab, v, labs, vs: int(np.flatnonzero((labs == lab) & (vs == v))
                                     [0])
  # Probe (b, 000) -> nearest in gallery view 018 is c: one miss in (0, 1).
  dist[idx('b', '000', pl, pv), idx('c', '018', gl, gv)] = 0.5
  # Two misses in cell (0, 2).
  dist[idx('a', '000', pl, pv), idx('b', '036', gl, gv)] = 0.5
  dist[idx('c', '000', pl, pv), idx('a', '036', gl, gv)] = 0.5
  # One miss on the diagonal cell (1, 1): must not count.
  dist[idx('a', '018', pl, pv), idx('c', '018', gl, gv)] = 0.5
  acc = retrieval.single_view_gallery_rank1(dist, pl, pv, gl, gv, views)
  want = np.array([[100., 66.67, 33.33], [100., 66.67, 100.],
                   [100., 100., 100.]])
  np.testing.assert_array_equal(acc, want)
  np.testing.assert_allclose(retrieval.exclude_identical_view(acc),
                             [50.0, 100.0, 100.0])


def test_rounding_is_per_cell():
  views = ['0', '1', '2']
  pl, pv = _grid(['a', 'b', 'c'], views)
  gl, gv = _grid(['a', 'b', 'c'], views)
  dist = np.where(pl[:, None] == gl[None, :], 1.0, 5.0)
  # Probes of view '0' from subjects b and c miss everywhere: 1/3 per cell.
  for s, wrong in (('b', 'a'), ('c', 'a')):
    dist[(pl == s) & (pv == '0')] = np.where(gl == wrong, 0.1, 5.0)
  acc = retrieval.single_view_gallery_rank1(dist, pl, pv, gl, gv, views)
  assert acc[0, 1] == 33.33 and acc[0, 2] == 33.33
  # Mean of rounded cells (33.33), not of exact thirds (33.333...).
  assert retrieval.exclude_identical_view(acc)[0] == pytest.approx(
      33.33, abs=1e-12)


def test_exclude_identical_view_matches_loop():
  acc = np.random.default_rng(1).uniform(0, 100, size=(14, 14))
  got = retrieval.exclude_identical_view(acc)
  for i in range(14):
    others = [acc[i, j] for j in range(14) if j != i]
    assert got[i] == pytest.approx(sum(others) / 13)


def _onehot_embeddings(subjects, n_subjects, parts=2):
  emb = np.zeros((len(subjects), parts, n_subjects), np.float32)
  emb[np.arange(len(subjects)), :, subjects] = 1.0
  return emb


def test_casia_b_evaluate_hand_case():
  subjects, types, views, ids = [], [], [], []
  all_types = ['nm-01', 'nm-02', 'nm-03', 'nm-04', 'nm-05', 'nm-06',
               'bg-01', 'bg-02', 'cl-01', 'cl-02']
  for s in range(3):
    for t in all_types:
      for v in ('000', '090'):
        subjects.append(f'{s + 1:03d}'.encode())  # TFDS Text -> bytes
        types.append(t.encode())
        views.append(v.encode())
        # Subject 1's clothing probes look like subject 2.
        ids.append(2 if (s == 1 and t.startswith('cl')) else s)
  emb = _onehot_embeddings(np.array(ids), 3)
  res = protocols.evaluate('casia_b', emb, subjects, types, views)
  assert res.views == ('000', '090')
  assert list(res.probe_sets) == ['NM', 'BG', 'CL']
  assert res.probe_sets['NM'].mean == 100.0
  assert res.probe_sets['BG'].mean == 100.0
  np.testing.assert_array_equal(res.probe_sets['CL'].matrix,
                                [[66.67, 66.67], [66.67, 66.67]])
  assert res.probe_sets['CL'].mean == pytest.approx(66.67)
  table = res.format_table()
  for word in ('NM', 'BG', 'CL', '000', '090', 'mean', '66.67'):
    assert word in table
  d = json.loads(json.dumps(res.to_dict()))
  assert d['probe_sets']['CL']['per_view'] == [66.67, 66.67]
  assert res.summary() == {'NM': 100.0, 'BG': 100.0, 'CL': 66.67}


def _oumvlp_set():
  """3 subjects, views 000/090; subject 2 has no '01' sequence at 090."""
  subjects, types, views = [], [], []
  for s in range(3):
    for seq in ('00', '01'):
      for v in ('000', '090'):
        if s == 2 and seq == '01' and v == '090':
          continue
        subjects.append(s)
        types.append(seq)
        views.append(v)
  return np.array(subjects), np.array(types), np.array(views)


def test_oumvlp_probe_without_gallery_match():
  subjects, types, views = _oumvlp_set()
  emb = _onehot_embeddings(subjects, 3)
  subj = [f'{s:05d}' for s in subjects]
  default = protocols.evaluate('oumvlp', emb, subj, types, views)
  # Probes of subject 2 vs gallery view 090 have no true match: misses.
  np.testing.assert_array_equal(default.probe_sets['NM'].matrix,
                                [[100., 66.67], [100., 66.67]])
  np.testing.assert_allclose(default.probe_sets['NM'].per_view, [66.67, 100.])
  removed = protocols.evaluate('oumvlp', emb, subj, types, views,
                               remove_no_gallery=True)
  np.testing.assert_array_equal(removed.probe_sets['NM'].matrix,
                                [[100., 100.], [100., 100.]])
  assert removed.probe_sets['NM'].mean == 100.0


def test_registry_errors():
  emb = np.zeros((2, 1, 2), np.float32)
  with pytest.raises(ValueError, match='casia_b.*oumvlp'):
    protocols.evaluate('casia-b', emb, ['1', '2'], ['a', 'b'], ['0', '0'])
  with pytest.raises(ValueError, match='remove_no_gallery'):
    protocols.evaluate('casia_b', emb, ['1', '2'], ['a', 'b'], ['0', '0'],
                       remove_no_gallery=True)
  assert set(protocols.PROTOCOLS) == {
      'casia_b', 'oumvlp', 'casia_b_cross_view', 'oumvlp_cross_view', 'gait3d',
      'grew', 'ccpg', 'sustech1k', 'casia_e'}


def test_cross_view_hand_case():
  gl = np.array(['A', 'B', 'A', 'C', 'A', 'B', 'D'])
  gv = np.array([0, 1, 1, 0, 2, 0, 0])
  pl = np.array(['A', 'B', 'D', 'C'])
  pv = np.array([0, 1, 0, 1])
  dist = np.array([
      [.1, .2, .3, .4, .5, .9, .95],  # kept B A C A B D -> AP (1/2+2/4)/2
      [.5, .1, .6, .7, .8, .2, .9],   # same-view B removed; B at 0 first
      [.1, .2, .3, .4, .5, .6, .7],   # only D is same view: skipped
      [.3] * 7,                        # ties keep gallery order; C 4th
  ])
  hit, ap = retrieval.cross_view_rank1_ap(dist, pl, pv, gl, gv,
                                          block_elements=7)
  np.testing.assert_array_equal(hit, [0., 1., np.nan, 0.])
  np.testing.assert_allclose(ap, [0.5, 1.0, np.nan, 0.25])
  np.testing.assert_allclose(retrieval.mean_per_view(hit, pv, [0, 1]),
                             [0.0, 50.0])
  np.testing.assert_allclose(retrieval.mean_per_view(ap, pv, [0, 1]),
                             [50.0, 62.5])


def _loop_rank1_ap(dist, pl, pv, gl, gv):
  hits, aps = [], []
  for i in range(len(pl)):
    order = sorted(range(len(gl)), key=lambda j: (dist[i, j], j))
    order = [j for j in order if not (gl[j] == pl[i] and gv[j] == pv[i])]
    rel = [gl[j] == pl[i] for j in order]
    if not any(rel):
      hits.append(np.nan)
      aps.append(np.nan)
      continue
    hits.append(float(rel[0]))
    found, total = 0, 0.0
    for k, r in enumerate(rel):
      if r:
        found += 1
        total += found / (k + 1)
    aps.append(total / sum(rel))
  return np.array(hits), np.array(aps)


def test_cross_view_matches_loop_reference():
  rng = np.random.default_rng(3)
  pl, pv = rng.integers(0, 6, 40), rng.integers(0, 3, 40)
  gl, gv = rng.integers(0, 6, 50), rng.integers(0, 3, 50)
  dist = rng.uniform(size=(40, 50))
  hit, ap = retrieval.cross_view_rank1_ap(dist, pl, pv, gl, gv,
                                          block_elements=200)
  want_hit, want_ap = _loop_rank1_ap(dist, pl, pv, gl, gv)
  np.testing.assert_array_equal(np.isnan(hit), np.isnan(want_hit))
  np.testing.assert_allclose(hit, want_hit)
  np.testing.assert_allclose(ap, want_ap)


def test_casia_b_cross_view_evaluate():
  subjects, types, views, ids = [], [], [], []
  for s in range(3):
    for t in ('nm-01', 'bg-01', 'cl-01', 'nm-02', 'bg-02', 'cl-02'):
      for v in ('000', '090'):
        subjects.append(str(s))
        types.append(t)
        views.append(v)
        ids.append(s)
  emb = _onehot_embeddings(np.array(ids), 3)
  res = protocols.evaluate('casia_b_cross_view', emb, subjects, types, views,
                           backend='jax')
  for name in ('NM', 'BG', 'CL'):
    np.testing.assert_array_equal(res.probe_sets[name].per_view, [100., 100.])
    assert res.probe_sets[name].map_mean == 100.0
    assert res.probe_sets[name].matrix is None
  assert 'NM mAP' in res.format_table()
  assert res.summary()['CL/mAP'] == 100.0
