"""evaluation.robustness: one side corrupted per key, the other clean."""

import json
import types as pytypes

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax import evaluation
from gait_jax import experiment
from gait_jax.data import corruptions
from gait_jax.data import transforms
from gait_jax.evaluation import protocols
from gait_jax.evaluation import robustness
from train_utils import tiny_config


@pytest.mark.parametrize('name', list(corruptions.CORRUPTIONS))
@pytest.mark.parametrize('length', [1, 7, 33])
def test_corrupted_length_is_what_corrupt_returns(name, length):
  frames = np.zeros((length, 16, 12), np.uint8)
  frames[:, 4:12, 3:9] = 255
  for s in corruptions.SEVERITIES:
    out = corruptions.corrupt(frames, name, s, 'k')
    assert len(out) == corruptions.corrupted_length(name, length, s)


class _Labels:
  """The labels of a test split, without frames."""

  def __init__(self, subjects, types, views):
    self.subjects, self.types, self.views = (
        np.array(x, object) for x in (subjects, types, views))

  def __len__(self):
    return len(self.subjects)


def _fake_evaluator(protocol, subjects, types, views, **options):
  return pytypes.SimpleNamespace(protocol=protocol, options=options,
                                 source=_Labels(subjects, types, views))


def test_sides_follow_each_protocols_roles():
  # CASIA-B: probes are the probe sets' types, gallery nm-01..04; bg-03 is
  # neither.
  ev = _fake_evaluator('casia_b', ['1'] * 4, ['nm-01', 'nm-05', 'cl-02',
                                              'bg-03'], ['000'] * 4)
  assert robustness.side_indices(ev, 'probe').tolist() == [1, 2]
  assert robustness.side_indices(ev, 'gallery').tolist() == [0]
  assert robustness.side_indices(ev, 'both').tolist() == [0, 1, 2, 3]
  # Gait3D: the probe set's keys are probes, every other sequence gallery.
  ev = _fake_evaluator('gait3d', ['1', '1', '2'], ['a', 'b', 'a'],
                       ['v'] * 3, probe_set=['1-b-v', '2-a-v'])
  assert robustness.side_indices(ev, 'probe').tolist() == [1, 2]
  assert robustness.side_indices(ev, 'gallery').tolist() == [0]
  # SUSTech1K matches types by substring, as its rule does.
  ev = _fake_evaluator('sustech1k', ['1'] * 3, ['00-nm', '01-bg', '02-cl'],
                       ['0'] * 3)
  assert robustness.side_indices(ev, 'probe').tolist() == [1, 2]
  assert robustness.side_indices(ev, 'gallery').tolist() == [0]
  # CCPG uses U0_D0 as a probe (CL) and as a gallery (BG): one side alone
  # is ambiguous and refused.
  ev = _fake_evaluator('ccpg', ['1'] * 2, ['U0_D0', 'U1_D1'], ['1_1'] * 2)
  with pytest.raises(ValueError, match="both probe and gallery.*'both'"):
    robustness.side_indices(ev, 'probe')
  with pytest.raises(ValueError, match='Unknown corruption side'):
    robustness.side_indices(ev, 'probes')


class _ListSource:
  """An in-memory split: the reference for what a corrupted cell embeds."""

  def __init__(self, base, frames):
    self.dataset_dir, self.split = base.dataset_dir, base.split
    self.subjects, self.types, self.views = (base.subjects, base.types,
                                             base.views)
    self._frames = frames
    self.lengths = np.array([len(f) for f in frames], np.int64)

  def __len__(self):
    return len(self._frames)

  def frames(self, i):
    return self._frames[i]

  def frames_many(self, indices):
    return [self._frames[int(i)] for i in indices]


def test_cells_embed_the_corrupted_probes_and_the_clean_gallery(
    tiny_dataset, tmp_path):
  config = tiny_config(tiny_dataset)
  model = experiment.build_model(config, 6)
  sils = jnp.zeros((2, 6) + transforms.FRAME_SHAPE, jnp.float32)
  variables = model.init(jax.random.key(0), sils, mask=None, train=False)
  ev = evaluation.Evaluator(config, model, experiment.make_mesh(config),
                            str(tmp_path))
  scored = []
  score = ev.score
  ev.score = lambda emb: scored.append(emb.copy()) or score(emb)
  names, sev = ['sampling', 'patch'], [1, 5]
  table = robustness.evaluate(ev, variables, side='probe', names=names,
                              severities=sev, seed=3)
  src = ev.source
  probe_types = {t for ts in protocols.get_protocol('casia_b')
                 .probe_sets.values() for t in ts}
  is_probe = np.array([t in probe_types for t in src.types])
  assert table.corrupted == is_probe.sum() > 0
  clean = scored[0]
  np.testing.assert_allclose(clean, ev.embed(variables), atol=1e-6)
  assert table.clean == score(clean).summary()
  for k, (name, s) in enumerate((n, s) for n in names for s in sev):
    # The reference: each probe corrupted by key, the gallery untouched.
    frames = [corruptions.corrupt(src.frames(i), name, s,
                                  f'{src.subjects[i]}-{src.types[i]}-'
                                  f'{src.views[i]}', 3)
              if is_probe[i] else src.frames(i) for i in range(len(src))]
    want = ev.embed(variables, _ListSource(src, frames))
    got = scored[1 + k]
    np.testing.assert_array_equal(got[~is_probe], clean[~is_probe])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert table.cells[(name, s)] == score(got).summary()
    for m in table.metrics:
      assert table.drop(name, s, m) == pytest.approx(
          table.clean[m] - table.cells[(name, s)][m])
  # Severity 5 of the patch changes the probes' embeddings more than 1.
  change = [np.abs(scored[1 + names.index('patch') * 2 + j] - clean).sum()
            for j in range(2)]
  assert change[1] > change[0] > 0

  # Deterministic: the same table again.
  again = robustness.evaluate(ev, variables, side='probe', names=['patch'],
                              severities=[5], seed=3)
  assert again.cells[('patch', 5)] == table.cells[('patch', 5)]

  paths = robustness.write(table, str(tmp_path / 'rb'))
  report = json.load(open(paths[0]))
  assert report['corrupted_sequences'] == table.corrupted
  assert [(c['corruption'], c['severity']) for c in report['cells']] == [
      (n, s) for n in names for s in sev]
  md = open(paths[1]).read()
  assert md.count('| sampling |') == len(table.metrics)
  with open(paths[2], 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_bad_names_and_severities_fail_before_embedding():
  ev = pytypes.SimpleNamespace(embed=lambda *a: pytest.fail())
  with pytest.raises(ValueError, match='valid: freeze'):
    robustness.evaluate(ev, None, names=['fog'])
  with pytest.raises(ValueError, match='1..5'):
    robustness.evaluate(ev, None, names=['patch'], severities=[6])
