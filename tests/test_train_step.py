"""The shard_map train step on 4 devices equals a plain single-device step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gait_jax import experiment
from gait_jax import losses
from gait_jax import parallel
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms
from gait_jax.data.source import GaitSource
from train_utils import tiny_config


def _reference_step(model, tx, loss_config, k, state, batch):
  """Whole batch on one device: no shard_map, no collectives."""
  sils = transforms.to_unit_range(jnp.asarray(batch['sils']))

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    outputs, mutated = model.apply(variables, sils, mask=batch['mask'],
                                   train=True, mutable=['batch_stats'])
    loss, _ = losses.compute_loss(outputs, batch['labels'], loss_config,
                                  samples_per_class=k)
    return loss, mutated.get('batch_stats', {})

  (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return loss, optax.apply_updates(state.params, updates), stats, opt_state


def _rel_close(a, b, rtol=1e-5, atol=1e-6):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a),
                          jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                               atol=atol, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('model_name,preset', [
    ('gaitset', 'triplet'),
    ('gaitset', 'gil'),
    ('baseline', 'gil'),  # BatchNorm with cross-device statistics + CE.
])
def test_sharded_step_equals_single_device(tiny_dataset, model_name, preset):
  config = tiny_config(tiny_dataset, model=model_name, preset=preset)
  with config.unlocked():
    config.loss.ce.weight = 0.1 if model_name == 'baseline' else 0.0
    config.data.k = 4
  src = GaitSource(tiny_dataset, 'train')
  classes = src.train_classes()
  sampler = sampling.PKSampler(src.subject_indices(classes), 4, 4, seed=0,
                               batch_shuffle=True)
  host = pipeline.TrainBatchLoader(src, sampler, num_frames=6)(0)
  batch = {k: host[k] for k in ('sils', 'labels', 'mask')}
  mesh = parallel.make_mesh(4)
  run = experiment.build_training(config, len(classes), mesh=mesh,
                                  donate_state=False)
  state = run.state
  want_loss, want_params, want_stats, _ = jax.jit(
      lambda s, b: _reference_step(run.eval_model, run.tx, config.loss, 4, s,
                                   b))(jax.device_get(state), batch)

  new, metrics = run.step(state, parallel.host_to_global(mesh, batch))
  np.testing.assert_allclose(float(metrics['loss/total']), float(want_loss),
                             rtol=1e-5)
  _rel_close(new.params, want_params)
  _rel_close(new.batch_stats, want_stats)
  assert int(new.step) == 1 and float(metrics['finite']) == 1.0
  # The update is not a no-op.
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params,
                       state.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_non_finite_step_keeps_the_state(tiny_dataset):
  config = tiny_config(tiny_dataset)
  src = GaitSource(tiny_dataset, 'train')
  classes = src.train_classes()
  sampler = sampling.PKSampler(src.subject_indices(classes), 4, 2, seed=0)
  host = pipeline.TrainBatchLoader(src, sampler, num_frames=6)(0)
  mesh = parallel.make_mesh(4)
  run = experiment.build_training(config, len(classes), mesh=mesh,
                                  donate_state=False)
  # A NaN parameter makes the loss NaN.
  bad = run.state.replace(
      params=jax.tree.map(lambda x: x * jnp.nan, run.state.params))
  batch = parallel.host_to_global(
      mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
  new, metrics = run.step(bad, batch)
  assert float(metrics['finite']) == 0.0
  assert int(new.step) == 0  # Not advanced.
