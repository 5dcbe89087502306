"""GaitSet specifics and initialisation (shared checks: test_models_common)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gait_jax import models
from gait_jax.models import layers


@pytest.mark.parametrize('variant, expected', [
    ('casia_b', 2_594_592),
    ('oumvlp', 6_313_536),
])
def test_param_count_matches_opengait(variant, expected):
  model = models.get_model('gaitset', variant=variant)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 3, 64, 44)))
  assert not shapes.get('batch_stats')
  assert sum(x.size for x in jax.tree.leaves(shapes)) == expected
  assert shapes['params']['Head']['fc_bin'].shape == (
      62, 128 if variant == 'casia_b' else 256, 256)


def test_fc_bin_init_uses_pytorch_fan_rule():
  # OpenGait's GaitSet: Head.fc_bin [62, 128, 256] has bound 0.011107.
  w = np.asarray(layers.fc_bin_init(jax.random.key(0), (62, 128, 256)))
  assert 0.0110 < np.abs(w).max() <= 0.011107
  np.testing.assert_allclose(w.std(), 0.011107 / np.sqrt(3), rtol=0.01)
  scale = np.asarray(layers.bn_scale_init(jax.random.key(1), (10000,)))
  np.testing.assert_allclose([scale.mean(), scale.std()], [1.0, 0.02],
                             atol=2e-3)


def test_tiny_init_and_train_step():
  model = models.get_model('gaitset', variant='tiny')
  sils = jax.random.uniform(jax.random.key(0), (16, 10, 64, 44))
  variables = jax.jit(model.init)(jax.random.key(1), sils)
  assert set(variables) == {'params'}
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  tx = optax.sgd(0.1)
  opt_state = tx.init(variables['params'])

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      out, state = model.apply({'params': p}, sils, train=True,
                               mutable=['batch_stats'])
      assert not state  # No BatchNorm: an empty collection.
      return jnp.mean(jnp.square(out['embeddings'])), out['embeddings']
    (loss, embs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, embs

  params, opt_state, loss0, embs = step(variables['params'], opt_state)
  assert embs.shape == (16, 62, 16) and embs.dtype == jnp.float32
  _, _, loss1, _ = step(params, opt_state)
  assert np.isfinite(loss0) and loss1 < loss0
