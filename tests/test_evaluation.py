"""Protocol rules of gait_jax.evaluation against OpenGait's, probe counts and
the registry."""

import json

import numpy as np
import pytest

from gait_jax.evaluation import protocols
from gait_jax.evaluation.protocols import casia_b
from gait_jax.evaluation.protocols import rules


def _og_distance(x, y):
  """OpenGait cuda_dist 'euc' in float64: mean over parts of the per-part
  Euclidean distances. x [m, p, c], y [g, p, c] -> [m, g]."""
  diff = x[:, None].astype(np.float64) - y[None].astype(np.float64)
  return np.sqrt(np.square(diff).sum(-1)).mean(-1)


def _og_acc_map(dist, q_pids, g_pids, q_views, g_views):
  """OpenGait compute_ACC_mAP (rank 1), one probe at a time."""
  accs, aps = [], []
  for i in range(len(q_pids)):
    keep = (g_views != q_views[i]) | (g_pids != q_pids[i])
    matches = (g_pids[keep][np.argsort(dist[i][keep], kind='stable')]
               == q_pids[i]).astype(np.int32)
    accs.append(min(matches.cumsum()[0], 1))
    if matches.sum() > 0:
      precision = matches.cumsum() / np.arange(1, matches.size + 1)
      aps.append((precision * matches).sum() / matches.sum())
  return np.mean(accs), np.mean(aps)


def _og_cross_view(emb, label, seq_type, view, probe_sets, gallery_types):
  """OpenGait cross_view_gallery_evaluation: {set: (rank-1 [V], mAP [V])}."""
  out = {}
  gal = np.isin(seq_type, gallery_types)
  for name, probe_types in probe_sets.items():
    acc, mean_ap = [], []
    for v in sorted(np.unique(view)):
      prb = np.isin(seq_type, probe_types) & (view == v)
      a, m = _og_acc_map(_og_distance(emb[prb], emb[gal]), label[prb],
                         label[gal], view[prb], view[gal])
      acc.append(np.round(a * 100, 2))
      mean_ap.append(np.round(m * 100, 2))
    out[name] = (np.array(acc), np.array(mean_ap))
  return out


def _seeded_cross_view_set(seed=0):
  """12 subjects x 3 views; gallery sequences missing at random (and all of
  subject 11's), so some probes have only same-view or no true matches."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(12, 4, 8))
  subj, typ, view, emb = [], [], [], []
  for s in range(12):
    for t in ('nm-01', 'bg-01', 'nm-02', 'bg-02'):
      for v in ('000', '090', '180'):
        if t.endswith('02') and (s == 11 or rng.uniform() < 0.7):
          continue
        subj.append(f'{s:03d}')
        typ.append(t)
        view.append(v)
        emb.append(centres[s] + rng.normal(scale=1.1, size=(4, 8)))
  return (np.array(emb, np.float32), np.array(subj), np.array(typ),
          np.array(view))


def test_cross_view_follows_opengait_for_probes_without_true_match():
  emb, subj, typ, view = _seeded_cross_view_set()
  sets = {'NM': ('nm-01',), 'BG': ('bg-01',)}
  gallery = ('nm-02', 'bg-02')
  proto = protocols.Protocol('seeded', rules.cross_view_gallery, sets,
                             gallery, {'remove_no_gallery': False})
  data = protocols.EvalSet.build(emb, subj, typ, view)
  got = rules.cross_view_gallery(proto, data, metric='euc', backend='numpy')
  skip = rules.cross_view_gallery(proto, data, metric='euc', backend='numpy',
                                  remove_no_gallery=True)
  want = _og_cross_view(emb, subj, typ, view, sets, gallery)
  for name in sets:
    r = got.probe_sets[name]
    np.testing.assert_array_equal(r.per_view, want[name][0])
    np.testing.assert_allclose(r.map_per_view, want[name][1], atol=1e-9)
    assert r.mean == pytest.approx(np.mean(want[name][0]))
    # The old rule (skip such probes for rank-1 too) only as an option.
    assert skip.probe_sets[name].counts.removed
    np.testing.assert_array_equal(skip.probe_sets[name].map_per_view,
                                  r.map_per_view)
  counts = got.probe_sets['NM'].counts
  assert counts.no_match > 0 and counts.probes == 36
  assert skip.probe_sets['NM'].mean > got.probe_sets['NM'].mean
  table = got.format_table()
  assert f'{counts.no_match} of 36 probes have no true match' in table
  assert 'misses for rank-1, skipped for mAP' in table
  entry = json.loads(json.dumps(got.to_dict()))['probe_sets']['NM']
  assert entry['counts'] == {'probes': 36, 'no_gallery': counts.no_gallery,
                             'no_match': counts.no_match, 'removed': False}


def _single_view_set():
  """Probes '00' of subjects 0-3 at 000/090; gallery '01': subjects 0, 1 at
  both views, subject 2 at 000 only, subject 3 none."""
  subj, typ, view = [], [], []
  for s in range(4):
    for t in ('00', '01'):
      for v in ('000', '090'):
        if t == '01' and (s == 3 or (s == 2 and v == '090')):
          continue
        subj.append(str(s))
        typ.append(t)
        view.append(v)
  emb = np.zeros((len(subj), 1, 4), np.float32)
  emb[np.arange(len(subj)), 0, np.array(subj, int)] = 1.0  # one-hot
  return emb, subj, typ, view


def test_single_view_counts_probes_without_gallery():
  emb, subj, typ, view = _single_view_set()
  res = protocols.evaluate('oumvlp', emb, subj, typ, view)
  counts = res.probe_sets['NM'].counts
  # Subject 3's 2 probes have no gallery; 3 cross-view pairs lack one.
  assert (counts.probes, counts.no_gallery, counts.no_gallery_pairs) == (8, 2,
                                                                         3)
  # OpenGait's rule: misses. Cell (000 -> 090): subjects 2, 3 miss.
  np.testing.assert_array_equal(res.probe_sets['NM'].matrix,
                                [[75., 50.], [75., 50.]])
  assert ('2 of 8 probes have no gallery sequence of their subject; 3 '
          'cross-view (probe, gallery view) pairs lack one and are counted '
          'as misses') in res.format_table()
  d = json.loads(json.dumps(res.to_dict()))
  assert d['probe_sets']['NM']['counts']['no_gallery_pairs'] == 3
  assert d['options'] == {'remove_no_gallery': False}
  removed = protocols.evaluate('oumvlp', emb, subj, typ, view,
                               remove_no_gallery=True)
  assert removed.probe_sets['NM'].mean == 100.0
  assert 'left out (remove_no_gallery)' in removed.format_table()


def test_table_says_when_every_probe_has_a_match():
  emb, subj, typ, view = _single_view_set()
  full = [i for i, s in enumerate(subj) if s in ('0', '1')]
  res = protocols.evaluate('oumvlp', emb[full], np.array(subj)[full],
                           np.array(typ)[full], np.array(view)[full])
  assert 'All 4 probes have a true match' in res.format_table()


def test_registry_lists_names_and_rejects_bad_arguments():
  assert protocols.protocol_names() == sorted(protocols.PROTOCOLS)
  for family in protocols.FAMILIES:
    for proto in family.PROTOCOLS:
      assert protocols.get_protocol(proto.name).family == proto.family
  emb = np.zeros((2, 1, 2), np.float32)
  args = (emb, ['1', '2'], ['nm-01', 'nm-05'], ['0', '0'])
  with pytest.raises(ValueError, match="valid: \\['numpy', 'jax'\\]"):
    protocols.evaluate('casia_b', *args, backend='torch')
  with pytest.raises(ValueError, match="valid: \\['euc', 'cos'\\]"):
    protocols.evaluate('casia_b', *args, metric='l2')
  with pytest.raises(ValueError, match='already defined'):
    protocols._registry([casia_b, casia_b])  # pylint: disable=protected-access
