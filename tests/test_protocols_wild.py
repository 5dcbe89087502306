"""The in-the-wild protocols (gait3d, grew, ccpg, sustech1k, casia_e) against
NumPy references written here from OpenGait's evaluators, plus hand cases.

The references follow OpenGait's code shape (float64 distances, one probe
or one cell at a time, a stable sort so ties go by gallery order) and share
nothing with gait_jax but the embeddings.
"""

import csv
import json
import types as pytypes

import numpy as np
import pytest

from gait_jax.evaluation import evaluator
from gait_jax.evaluation import protocols
from gait_jax.evaluation import ranking
from gait_jax.evaluation import retrieval

# ------------------------------------------------------------ references


def _dist(x, y):
  """cuda_dist 'euc' in float64: mean over parts of per-part distances."""
  d = x[:, None].astype(np.float64) - y[None].astype(np.float64)
  return np.sqrt((d * d).sum(-1)).mean(-1)


def _rank_metrics(dist, p_lab, g_lab, p_cam=None, g_cam=None):
  """evaluate_rank (cams None) / evaluate_many: (cmc, APs, INPs)."""
  cmcs, aps, inps = [], [], []
  for i in range(dist.shape[0]):
    order = np.argsort(dist[i], kind='stable')
    match = (g_lab[order] == p_lab[i]).astype(np.int64)
    if p_cam is not None:
      keep = ~((g_lab[order] == p_lab[i]) & (g_cam[order] == p_cam[i]))
      match = match[keep]
    if not match.any():
      continue
    cum = match.cumsum()
    last = np.max(np.where(match == 1))
    inps.append(cum[last] / (last + 1.0))
    clipped = np.minimum(cum, 1)[:50]
    cmcs.append(np.pad(clipped, (0, 50 - clipped.size), mode='edge'))
    aps.append(np.sum(cum / np.arange(1, match.size + 1) * match)
               / match.sum())
  return np.mean(cmcs, 0)[:min(50, dist.shape[1])], np.array(aps), np.array(
      inps)


def _topk_hits(dist, p_lab, g_lab, k):
  """[k] #probes with their subject among the j nearest, j = 1..k."""
  idx = np.argsort(dist, 1, kind='stable')[:, :k]
  return np.sum(np.cumsum(p_lab[:, None] == g_lab[idx], 1) > 0, 0)


def _single_view(emb, lab, view, prb_mask, gal_mask, views, k):
  """single_view_gallery_evaluation: [V, V, k] rounded cells."""
  acc = np.full((len(views), len(views), k), np.nan)
  for i, v1 in enumerate(views):
    p = prb_mask & (view == v1)
    for j, v2 in enumerate(views):
      g = gal_mask & (view == v2)
      if p.sum() == 0 or g.sum() == 0:
        continue
      hits = _topk_hits(_dist(emb[p], emb[g]), lab[p], lab[g],
                        min(k, g.sum()))
      hits = np.concatenate([hits, np.full(k - hits.size, hits[-1])])
      acc[i, j] = np.round(hits * 100 / p.sum(), 2)
  return acc


def _de_diag(acc):
  return (np.sum(acc - np.diag(np.diag(acc)), 1) / (acc.shape[1] - 1))


def _clustered(rng, labels, parts=3, dim=6, noise=0.9):
  """Embeddings around one centre per subject."""
  uniq = sorted(set(labels))
  centres = {s: rng.normal(size=(parts, dim)) for s in uniq}
  return np.array([centres[s] + rng.normal(scale=noise, size=(parts, dim))
                   for s in labels], np.float32)


def _scalar_emb(xs):
  """[N, 1, 1] embeddings: the distance is |x - y| (exact in float32)."""
  return np.asarray(xs, np.float32).reshape(-1, 1, 1)


# ---------------------------------------------------------------- kernels


def test_kernels_match_a_stable_argsort_with_ties():
  rng = np.random.default_rng(0)
  dist = rng.integers(0, 4, size=(40, 30)).astype(np.float32)  # many ties
  rel = rng.uniform(size=(40, 30)) < 0.15
  keep = rng.uniform(size=(40, 30)) < 0.8
  order = np.argsort(dist, 1, kind='stable')
  np.testing.assert_array_equal(ranking.stable_topk(dist, 7), order[:, :7])
  first, ap, inp = ranking.rank_list_block(dist, rel & keep, keep)
  fm = ranking.first_match_rank(dist, rel & keep, keep)
  np.testing.assert_array_equal(first, fm)
  for i in range(40):
    kept = [j for j in order[i] if keep[i, j]]
    m = np.array([rel[i, j] for j in kept], int)
    if not m.any():
      assert first[i] == -1 and np.isnan(ap[i]) and np.isnan(inp[i])
      continue
    pos = np.flatnonzero(m)
    assert first[i] == pos[0]
    assert ap[i] == pytest.approx(np.mean(np.arange(1, pos.size + 1)
                                          / (pos + 1)))
    assert inp[i] == pytest.approx(pos.size / (pos[-1] + 1))


def test_minp_uses_the_unclipped_match_count():
  # Matches at positions 1 and 4: INP = 2/4 (a clipped count gives 1/4).
  dist = np.array([[1., 2., 3., 4.]])
  rel = np.array([[True, False, False, True]])
  first, ap, inp = ranking.rank_list_block(dist, rel)
  assert first[0] == 0 and ap[0] == 0.75 and inp[0] == 0.5


# ----------------------------------------------------------------- gait3d


def _gait3d_set(rng, n_subj=30):
  subj, typ, view, probes = [], [], [], []
  for s in range(n_subj):
    n = 1 if s % 7 == 3 else rng.integers(2, 7)  # some: no true match
    for q in range(n):
      subj.append(f'{s:04d}')
      typ.append(f'camid{rng.integers(1, 40)}_videoid{q % 3}')
      view.append(f'seq{q}')
    probes.append('-'.join([subj[-n], typ[-n], view[-n]]))
  return _clustered(rng, subj), np.array(subj), np.array(typ), np.array(
      view), probes


def test_gait3d_matches_reference(tmp_path):
  rng = np.random.default_rng(1)
  emb, subj, typ, view, probe_keys = _gait3d_set(rng)
  keys = np.array(['-'.join(k) for k in zip(subj, typ, view)])
  is_p = np.isin(keys, probe_keys)
  cmc, aps, inps = _rank_metrics(_dist(emb[is_p], emb[~is_p]), subj[is_p],
                                 subj[~is_p])
  res = protocols.evaluate('gait3d', emb, subj, typ, view,
                           probe_set=probe_keys)
  got = res.summary()
  assert list(got) == ['rank-1', 'rank-5', 'rank-10', 'mAP', 'mINP']
  want = [cmc[0] * 100, cmc[4] * 100, cmc[9] * 100, aps.mean() * 100,
          inps.mean() * 100]
  np.testing.assert_allclose(list(got.values()), want, rtol=1e-9)
  assert 0 < got['rank-1'] < 100 and got['mINP'] < got['mAP']
  counts = res.probe_sets['test'].counts
  assert counts.probes == 30 and counts.no_match == 30 - aps.size == 4
  assert "4 of 30 probes have no true match" in res.format_table()
  path = tmp_path / 'Gait3D.json'
  path.write_text(json.dumps({'PROBE_SET': probe_keys}))
  assert protocols.evaluate('gait3d', emb, subj, typ, view,
                            probe_set=str(path)).summary() == got
  jax_res = protocols.evaluate('gait3d', emb, subj, typ, view,
                               probe_set=probe_keys, backend='jax')
  np.testing.assert_allclose(list(jax_res.summary().values()), want,
                             rtol=1e-6)


def test_gait3d_hand_case_and_shipped_probe_set():
  # Gallery a@1 b@2 c@3 a@4; probes a@0 (matches at 1 and 4: AP 0.75, INP
  # 0.5), c@2.5 (b and c tie at 0.5: b first by gallery order), z@100 (no
  # match: skipped). Keys: the first three of the shipped probe set.
  with open(protocols.gait3d.PROBE_SET_FILE) as f:
    shipped = json.load(f)['probe_set'][:3]
  p_parts = [k.split('-') for k in shipped]
  subj = [p[0] for p in p_parts] + ['a', 'b', 'c', 'a']
  typ = [p[1] for p in p_parts] + ['t'] * 4
  view = [p[2] for p in p_parts] + ['s1', 's2', 's3', 's4']
  subj[0], subj[1], subj[2] = 'a', 'c', 'z'
  shipped_keys = ['-'.join(k) for k in zip(subj[:3], typ[:3], view[:3])]
  emb = _scalar_emb([0.0, 2.5, 100.0, 1, 2, 3, 4])
  res = protocols.evaluate('gait3d', emb, subj, typ, view,
                           probe_set=shipped_keys)
  assert res.summary() == {'rank-1': 50.0, 'rank-5': 100.0, 'rank-10': 100.0,
                           'mAP': 62.5, 'mINP': 50.0}
  assert res.probe_sets['test'].counts.no_match == 1
  # Default: the shipped file; only the real keys (z, c renamed) miss.
  real = [p[0] for p in p_parts]
  default = protocols.evaluate('gait3d', emb, real + subj[3:], typ, view)
  assert default.probe_sets['test'].counts.probes == 3
  assert default.probe_sets['test'].counts.no_match == 3  # no a/b/c ids


# ------------------------------------------------------------------- grew


def _grew_set(rng, n=40):
  subj, typ, view = [], [], []
  for s in range(n):
    for t in ('01', '02'):
      if t == '01' and s % 9 == 4:
        continue  # probe without gallery
      subj.append(f'{s + 1:05d}')
      typ.append(t)
      view.append(f'{rng.integers(1 << 30):08x}')
  for _ in range(25):
    subj.append('probe')
    typ.append('03')
    view.append(f'{rng.integers(1 << 30):08x}')
  return _clustered(rng, subj, noise=1.1), np.array(subj), np.array(
      typ), np.array(view)


def test_grew_proxy_matches_reference():
  rng = np.random.default_rng(2)
  emb, subj, typ, view = _grew_set(rng)
  g, p = typ == '01', typ == '02'
  want = np.round(_topk_hits(_dist(emb[p], emb[g]), subj[p], subj[g], 20)
                  * 100 / p.sum(), 2)
  res = protocols.evaluate('grew', emb, subj, typ, view)
  np.testing.assert_array_equal(res.probe_sets['proxy'].per_view, want)
  assert res.summary() == {'rank-1': want[0], 'rank-5': want[4],
                           'rank-10': want[9], 'rank-20': want[19]}
  assert 0 < want[0] < want[19] < 100
  assert res.probe_sets['proxy'].counts.no_gallery == 4
  table = res.format_table()
  assert 'LOCAL PROXY, not the official GREW protocol' in table
  assert '4 of 40 probes have no true match' in table and 'misses' in table


def test_grew_submission_csv(tmp_path):
  # 22 gallery sequences at x = 0..21 (subject of x: 1 + x // 2, types
  # alternating 01/02); probes 'zz' at 0 and 'aa' at 10.5 (ties 10/11, 9/12...
  # broken by gallery order).
  xs = list(range(22)) + [0.0, 10.5]
  subj = [f'{1 + x // 2:05d}' for x in range(22)] + ['probe', 'probe']
  typ = ['01' if x % 2 == 0 else '02' for x in range(22)] + ['03', '03']
  view = [f'g{x}' for x in range(22)] + ['zz', 'aa']
  written = protocols.write_outputs('grew', _scalar_emb(xs), subj, typ, view,
                                    str(tmp_path))
  assert written == [str(tmp_path / 'grew_submission.csv')]
  rows = list(csv.reader(open(written[0])))
  assert rows[0] == ['videoId'] + [f'rank{k}' for k in range(1, 21)]
  aa_order = [10, 11, 9, 12, 8, 13, 7, 14, 6, 15, 5, 16, 4, 17, 3, 18, 2, 19,
              1, 20]
  assert rows[1] == ['aa'] + [str(1 + x // 2) for x in aa_order]
  assert rows[2] == ['zz'] + [str(1 + x // 2) for x in range(20)]
  assert len(rows) == 3
  no_probe = protocols.write_outputs('grew', _scalar_emb(xs[:22]), subj[:22],
                                     typ[:22], view[:22], str(tmp_path / 'n'))
  assert no_probe == []
  assert protocols.write_outputs('casia_b', _scalar_emb(xs), subj, typ, view,
                                 str(tmp_path)) == []


def test_evaluator_writes_the_grew_submission_in_final_runs(tmp_path):
  rng = np.random.default_rng(3)
  emb, subj, typ, view = _grew_set(rng)
  ev = object.__new__(evaluator.Evaluator)  # no model: fixed embeddings
  ev.workdir, ev.protocol, ev.options = str(tmp_path), 'grew', {}
  ev.metric, ev.backend = 'euc', 'numpy'
  ev.source = pytypes.SimpleNamespace(subjects=subj, types=typ, views=view)
  ev._config = pytypes.SimpleNamespace(  # pylint: disable=protected-access
      eval=pytypes.SimpleNamespace(plots=False))
  ev.embed = lambda variables: emb
  ev.run(1, None, final=False, bar=pytypes.SimpleNamespace(write=print))
  assert not (tmp_path / 'grew_submission.csv').exists()
  ev.run(2, None, final=True)
  rows = list(csv.reader(open(tmp_path / 'grew_submission.csv')))
  assert len(rows) == 26 and [r[0] for r in rows[1:]] == sorted(
      view[typ == '03'])


# ------------------------------------------------------------------- ccpg

_CCPG_STATUS = ('U0_D0', 'U0_D0_BG', 'U1_D0', 'U1_D1', 'U2_D2', 'U3_D3',
                'U0_D3')
_CCPG_PAIRS = {'CL': (('U0_D0_BG', 'U0_D0'), ('U1_D1', 'U2_D2', 'U3_D3')),
               'UP': (('U3_D3',), ('U0_D3',)), 'DN': (('U1_D0',), ('U1_D1',)),
               'BG': (('U0_D0_BG',), ('U0_D0',))}


def _ccpg_set(rng, n=12):
  subj, typ, view = [], [], []
  for s in range(n):
    for st in _CCPG_STATUS:
      for v in ('1', '2', '3'):
        if rng.uniform() < 0.1 and st not in ('U0_D0', 'U0_D0_BG'):
          continue  # missing gallery sequences
        subj.append(f'{100 + s}')
        typ.append(st)
        view.append(f'{v}_{rng.integers(100)}')  # suffix dropped
  return (_clustered(rng, subj, noise=1.0), np.array(subj), np.array(typ),
          np.array(view))


def test_ccpg_matches_reference():
  emb, subj, typ, view = _ccpg_set(np.random.default_rng(4))
  vp = np.array([v.split('_')[0] for v in view])
  res = protocols.evaluate('ccpg', emb, subj, typ, view)
  assert res.views == ('1', '2', '3')
  got = res.summary()
  for name, (p_t, g_t) in _CCPG_PAIRS.items():
    p, g = np.isin(typ, p_t), np.isin(typ, g_t)
    acc = _single_view(emb, subj, vp, p, g, ['1', '2', '3'], 1)[..., 0]
    np.testing.assert_array_equal(res.probe_sets[name].matrix, acc)
    assert got[name] == pytest.approx(np.mean(_de_diag(acc)), abs=1e-12)
    assert got[f'{name}/incl'] == pytest.approx(np.mean(acc), abs=1e-12)
    cmc, aps, inps = _rank_metrics(_dist(emb[p], emb[g]), subj[p], subj[g],
                                   vp[p], vp[g])
    assert got[f'{name}/reid-rank-1'] == pytest.approx(cmc[0] * 100)
    assert got[f'{name}/reid-mAP'] == pytest.approx(aps.mean() * 100)
    assert got[f'{name}/reid-mINP'] == pytest.approx(inps.mean() * 100)
  assert 0 < got['CL'] < 100
  assert len(got) == 4 * 5


def test_ccpg_identical_view_hand_case():
  # Subject A's only gallery sequence is in the probe's view prefix ('1_x'
  # vs '1_y'): excluded for ReID (no true match), a hit in the diagonal cell.
  subj = ['A', 'B', 'A', 'B', 'B']
  typ = ['U1_D0', 'U1_D0', 'U1_D1', 'U1_D1', 'U1_D1']
  view = ['1_y', '2_y', '1_x', '2_x', '1_z']
  emb = _scalar_emb([0.0, 5.0, 0.1, 5.1, -0.5])
  res = protocols.evaluate('ccpg', emb, subj, typ, view)
  dn = res.probe_sets['DN']
  np.testing.assert_array_equal(dn.matrix, [[100., 0.], [0., 100.]])
  assert dn.mean == 0.0 and dn.extra['DN/incl'] == 50.0
  # B@5 (view 2): same-view B@5.1 removed, B@-0.5 after A@0.1: rank 2.
  assert dn.extra['DN/reid-rank-1'] == 0.0
  assert dn.extra['DN/reid-mAP'] == 50.0
  assert dn.counts.no_match == 1 and dn.counts.no_gallery_pairs == 1
  assert 'no true match after the same-view exclusion' in res.format_table()


# -------------------------------------------------------------- sustech1k

_SUS_TYPES = ('00-nm', '01-nm', '01-bg', '02-cl', '03-cr', '04-ub', '02-uf',
              '03-oc', '01-nt', '05-bg')
_SUS_SETS = {'Normal': ('01-nm',), 'Bag': ('bg',), 'Clothing': ('cl',),
             'Carrying': ('cr',), 'Umbrella': ('ub',), 'Uniform': ('uf',),
             'Occlusion': ('oc',), 'Night': ('nt',),
             'Overall': ('01', '02', '03', '04')}


def _sustech_set(rng, views, n=14):
  subj, typ, view = [], [], []
  for s in range(n):
    for t in _SUS_TYPES:
      for v in views:
        if rng.uniform() < 0.15:
          continue
        subj.append(f'{s:04d}')
        typ.append(t)
        view.append(v)
  return (_clustered(rng, subj, noise=1.2), np.array(subj), np.array(typ),
          np.array(view))


def test_sustech1k_matches_reference():
  views = ['000', '000-far', '090', '270-far']
  emb, subj, typ, view = _sustech_set(np.random.default_rng(5), views)
  res = protocols.evaluate('sustech1k', emb, subj, typ, view)
  got = res.summary()
  assert list(got)[:2] == ['Normal', 'Normal/R5'] and len(got) == 18
  gal = np.array(['00-nm' in t for t in typ])
  for name, parts in _SUS_SETS.items():
    prb = np.array([any(p in t for p in parts) for t in typ])
    acc = _single_view(emb, subj, view, prb, gal, sorted(views), 5)
    np.testing.assert_array_equal(res.probe_sets[name].matrix, acc[..., 0])
    assert got[name] == pytest.approx(np.mean(_de_diag(acc[..., 0])),
                                      abs=1e-12)
    assert got[f'{name}/R5'] == pytest.approx(
        np.mean(_de_diag(acc[..., 4])), abs=1e-12)
  assert res.probe_sets['Overall'].counts.probes == np.sum(
      [t[:2] in ('01', '02', '03', '04') for t in typ])
  assert 0 < got['Overall'] < got['Overall/R5'] <= 100


# ---------------------------------------------------------------- casia_e


def test_casia_e_matches_reference_and_drops_270():
  rng = np.random.default_rng(6)
  types = [f'{q}-{s}-{c}-{n}' for q in 'HL' for n in (1, 2)
           for s, c in [('scene1', 'nm'), ('scene2', 'nm'), ('scene3', 'bg'),
                        ('scene3_s', 'cl'), ('scene2', 'cl')]]
  subj, typ, view = [], [], []
  for s in range(10):
    for t in types:
      for v in ('000', '090', '180', '270'):
        if rng.uniform() < 0.3:
          continue
        subj.append(f'{s + 201:03d}')
        typ.append(t)
        view.append(v)
  emb = _clustered(rng, subj, noise=1.1)
  subj, typ, view = np.array(subj), np.array(typ), np.array(view)
  res = protocols.evaluate('casia_e', emb, subj, typ, view)
  assert res.views == ('000', '090', '180')
  gal = np.isin(typ, [f'{q}-scene1-nm-{n}' for q in 'HL' for n in (1, 2)])
  for name, cond in (('NM', 'nm'), ('BG', 'bg'), ('CL', 'cl')):
    prb = np.isin(typ, [f'{q}-{s}-{cond}-{n}' for q in 'HL' for n in (1, 2)
                        for s in ('scene2', 'scene3', 'scene3_s')])
    acc = _single_view(emb, subj, view, prb, gal, ['000', '090', '180'],
                       1)[..., 0]
    np.testing.assert_array_equal(res.probe_sets[name].matrix, acc)
    assert res.summary()[name] == pytest.approx(np.mean(_de_diag(acc)),
                                                abs=1e-12)
  assert list(res.summary()) == ['NM', 'BG', 'CL']


# ------------------------------------------------------- blocks and counts


def test_every_protocol_ranks_in_bounded_blocks(monkeypatch):
  rng = np.random.default_rng(7)
  emb, subj, typ, view, keys = _gait3d_set(rng)
  gemb, gsubj, gtyp, gview = _grew_set(rng)
  cases = [('gait3d', (emb, subj, typ, view), {'probe_set': keys}),
           ('grew', (gemb, gsubj, gtyp, gview), {}),
           ('ccpg', _ccpg_set(rng, 5), {}),
           ('sustech1k', _sustech_set(rng, ['000', '090'], 5), {})]
  full = [protocols.evaluate(n, *a, **o).summary() for n, a, o in cases]
  shapes = []
  part_distance = retrieval.part_distance

  def recording(x, y, *args, **kwargs):
    shapes.append((x.shape[0], y.shape[0]))
    return part_distance(x, y, *args, **kwargs)

  monkeypatch.setattr(retrieval, 'part_distance', recording)
  monkeypatch.setattr(ranking, 'RANK_BLOCK_ELEMENTS', 64)
  small = [protocols.evaluate(n, *a, **o).summary() for n, a, o in cases]
  np.testing.assert_equal(small, full)  # NaN == NaN
  assert len(shapes) > 4 and all(b * g <= max(64, g) for b, g in shapes)
