"""evaluation.Evaluator: early validation, reports, plots, scalars, output."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from gait_jax import evaluation
from gait_jax import experiment
from gait_jax.data import transforms
from gait_jax.evaluation import extract
from gait_jax.evaluation import retrieval
from train_utils import tiny_config


class _Writer:

  def __init__(self):
    self.rows = []

  def write_scalars(self, step, scalars):
    self.rows.append((step, dict(scalars)))


class _Bar:

  def __init__(self):
    self.lines = []

  def write(self, message):
    self.lines.append(message)


def _config(dataset_dir, **eval_fields):
  config = tiny_config(dataset_dir)
  with config.unlocked():
    config.eval.update(eval_fields)
  return config


@pytest.mark.parametrize('field,value,match', [
    ('protocol', 'casia-b', 'casia_b.*oumvlp'),
    ('distance_backend', 'torch', 'numpy.*jax'),
    ('metric', 'l2', 'euc.*cos')])
def test_bad_names_fail_before_any_embedding(tiny_dataset, monkeypatch,
                                             field, value, match):
  monkeypatch.setattr(extract, 'make_embed_fn', lambda *a: pytest.fail())
  config = _config(tiny_dataset, **{field: value})
  with pytest.raises(ValueError, match=match):
    evaluation.Evaluator(config, None, None, '/nonexistent')


def test_run_writes_reports_scalars_plots_and_prints(tiny_dataset, tmp_path,
                                                     monkeypatch, capsys):
  config = _config(tiny_dataset, distance_backend='jax', plots=True)
  model = experiment.build_model(config, 6)
  sils = jnp.zeros((2, 6) + transforms.FRAME_SHAPE, jnp.float32)
  variables = model.init(jax.random.key(0), sils, mask=None, train=False)
  built, backends = [], set()
  make_embed_fn, part_distance = extract.make_embed_fn, retrieval.part_distance

  def counting_make_embed_fn(*args):
    built.append(args)
    return make_embed_fn(*args)

  def recording_part_distance(*args, backend, **kwargs):
    backends.add(backend)
    return part_distance(*args, backend=backend, **kwargs)

  monkeypatch.setattr(extract, 'make_embed_fn', counting_make_embed_fn)
  monkeypatch.setattr(retrieval, 'part_distance', recording_part_distance)
  ev = evaluation.Evaluator(config, model, experiment.make_mesh(config),
                            str(tmp_path))
  writer, bar = _Writer(), _Bar()
  result = ev.run(2, variables, final=False, writer=writer, bar=bar)
  assert backends == {'jax'}  # eval.distance_backend reaches the rule.
  assert writer.rows == [(2, {f'eval/{k}': v
                              for k, v in result.summary().items()})]
  (line,) = bar.lines
  assert line.startswith('eval at step 2 (casia_b): NM=') and ' BG=' in line
  assert line.endswith(' s)')
  report = json.load(open(tmp_path / 'eval_2.json'))
  assert report['step'] == 2 and report['summary'] == result.summary()
  assert report['probe_sets']['NM']['counts']['probes'] == 16
  assert not any(f.endswith('.png') for f in os.listdir(tmp_path))

  again = ev.run(4, variables, final=True)
  assert len(built) == 1  # One jitted embed function for every run.
  assert again.summary() == result.summary()
  out = capsys.readouterr().out
  assert again.format_table() in out
  assert f'Report: {tmp_path / "eval_4.json"}' in out
  assert json.load(open(tmp_path / 'eval_latest.json'))['step'] == 4
  for png in ('rank1_NM.png', 'rank1_BG.png', 'rank1_CL.png', 'tsne.png'):
    assert os.path.getsize(tmp_path / png) > 1000
