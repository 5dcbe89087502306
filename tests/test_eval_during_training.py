"""Evaluation during training (``train.eval_every``, OpenGait's with_test)."""

import json
import os

import jax
import numpy as np
import pytest

from gait_jax import config as config_lib
from gait_jax import evaluation
from gait_jax import experiment
from gait_jax import train
from gait_jax.evaluation import extract
from train_utils import tiny_config


def _config(dataset_dir, every: int):
  config = tiny_config(dataset_dir, steps=4)
  with config.unlocked():
    config.train.eval_every = every
  return config


def _rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def runs(tiny_dataset, tmp_path_factory):
  """Two 4-step runs, evaluating every 2 steps and never.

  Returns:
    {every: workdir}, {every: final state}, the number of embed functions
    built and the embeddings of each evaluation during training.
  """
  embed_fns, embeddings = [], []
  make_embed_fn = extract.make_embed_fn
  evaluate = evaluation.Evaluator.evaluate

  def counting_make_embed_fn(*args, **kwargs):
    embed_fns.append(args)
    return make_embed_fn(*args, **kwargs)

  def recording_evaluate(self, variables):
    result, emb = evaluate(self, variables)
    embeddings.append(emb)
    return result, emb

  dirs, states = {}, {}
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(extract, 'make_embed_fn', counting_make_embed_fn)
    patch.setattr(evaluation.Evaluator, 'evaluate', recording_evaluate)
    for every in (2, 0):
      dirs[every] = str(tmp_path_factory.mktemp(f'every{every}'))
      states[every] = train.train(_config(tiny_dataset, every), dirs[every])
  return dirs, states, len(embed_fns), embeddings


def test_eval_scalars_match_an_evaluation_of_the_checkpoint(tiny_dataset,
                                                            runs):
  dirs, _, embed_fns_built, embeddings = runs
  assert embed_fns_built == 1  # One jitted embed function for both evals.
  assert len(embeddings) == 2
  config = _config(tiny_dataset, 2)
  evals = {r['step']: {k[len('eval/'):]: v for k, v in r.items()
                       if k.startswith('eval/')}
           for r in _rows(dirs[2]) if any(k.startswith('eval/') for k in r)}
  assert sorted(evals) == [2, 4]
  assert set(evals[4]) == {'NM', 'BG', 'CL'}
  for step in (2, 4):
    report = json.load(open(os.path.join(dirs[2], f'eval_{step}.json')))
    assert report['step'] == step and report['summary'] == evals[step]
  # An independent evaluation of the final checkpoint (the eval mode's path).
  mesh = experiment.make_mesh(config)
  model, variables, step = experiment.restore_variables(config, dirs[2],
                                                        mesh=mesh)
  assert step == 4
  result, emb = evaluation.Evaluator(config, model, mesh,
                                     dirs[2]).evaluate(variables)
  assert result.summary() == evals[4]
  np.testing.assert_array_equal(embeddings[-1], emb)
  assert np.abs(embeddings[0] - emb).max() > 0  # Step 2 is another model.
  assert not any(f.endswith('.png') for f in os.listdir(dirs[2]))


def test_training_is_unchanged_by_evaluation(runs):
  dirs, states, _, _ = runs
  curve = lambda rows: [(r['step'], r['loss/total'], r['grad_norm'])
                        for r in rows if 'loss/total' in r]
  with_eval, without = curve(_rows(dirs[2])), curve(_rows(dirs[0]))
  assert [s for s, *_ in without] == [1, 2, 3, 4]
  assert with_eval == without
  assert not any(k.startswith('eval/') for r in _rows(dirs[0]) for k in r)
  for a, b in zip(jax.tree.leaves(jax.device_get(states[2])),
                  jax.tree.leaves(jax.device_get(states[0]))):
    np.testing.assert_array_equal(a, b)


def test_eval_every_is_validated(tiny_dataset, tmp_path):
  assert config_lib.base_config().train.eval_every == 0
  for bad in (-1, -100):
    with pytest.raises(ValueError, match=rf'train\.eval_every={bad}\b'):
      train.train(_config(tiny_dataset, bad), str(tmp_path))
  assert not os.listdir(tmp_path)  # Refused before anything was written.
  config = tiny_config(tiny_dataset)
  with pytest.raises(TypeError):  # The locked schema keeps it an int.
    config.train.eval_every = 0.5
  assert train.eval_every(_config(tiny_dataset, 3)) == 3
