"""bfloat16 compute: parameters and losses stay float32, training is finite."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import experiment
from gait_jax import train
from train_utils import tiny_config


def test_bfloat16_trains_with_finite_losses(tiny_dataset, tmp_path):
  config = tiny_config(tiny_dataset, model='baseline', preset='gil', steps=3)
  with config.unlocked():
    config.train.compute_dtype = 'bfloat16'
    config.loss.ce.weight = 0.1
  state = train.train(config, str(tmp_path))
  dtypes = {x.dtype for x in jax.tree.leaves(state.params)}
  assert dtypes == {jnp.dtype('float32')}
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert len(rows) == 3
  for row in rows:
    assert np.isfinite(row['loss/total']) and row['finite'] == 1.0
  # The model really computes in bfloat16.
  model = experiment.build_model(config, 6)
  x = jnp.zeros((2, 4, 64, 44))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  hlo = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, x).as_text()
  assert 'bf16' in hlo
  out = model.apply(variables, x)
  assert out['embeddings'].dtype == jnp.float32
