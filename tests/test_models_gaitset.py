"""GaitSet: shapes, parameter counts, masking and the registry contract."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gait_jax import models


def _param_count(model, frames=3):
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             jnp.zeros((1, frames, 64, 44)))
  return sum(x.size for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('variant, expected', [
    ('casia_b', 2_594_592),
    ('oumvlp', 6_313_536),
])
def test_param_count_matches_opengait(variant, expected):
  assert _param_count(models.get_model('gaitset', variant=variant)) == expected


def test_output_shapes_and_dtype():
  model = models.get_model('gaitset', variant='tiny', dtype=jnp.bfloat16)
  sils = jax.random.uniform(jax.random.key(0), (3, 5, 64, 44))
  variables = model.init(jax.random.key(1), sils)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  out, state = model.apply(variables, sils, train=True,
                           mutable=['batch_stats'])
  assert set(out) == {'embeddings'}
  assert out['embeddings'].shape == (3, 62, 16)
  assert out['embeddings'].dtype == jnp.float32
  assert not jax.tree.leaves(state)


def test_padded_batch_equals_single_sequences():
  model = models.get_model('gaitset', variant='tiny')
  lengths = [7, 3, 1]
  sils = jax.random.uniform(jax.random.key(0), (3, 7, 64, 44))
  sils = (sils > 0.5).astype(jnp.float32)
  variables = model.init(jax.random.key(1), sils)
  mask = jnp.arange(7)[None, :] < jnp.array(lengths)[:, None]
  # Garbage in the padded frames must not leak into the embeddings.
  sils = jnp.where(mask[..., None, None], sils, 7.0)
  batched = jax.jit(model.apply)(variables, sils, mask)['embeddings']
  for i, length in enumerate(lengths):
    alone = model.apply(variables, sils[i:i + 1, :length])['embeddings']
    np.testing.assert_allclose(batched[i], alone[0], atol=1e-5, rtol=0)


def test_tiny_train_step_runs():
  model = models.get_model('gaitset', variant='tiny')
  sils = jax.random.uniform(jax.random.key(0), (16, 10, 64, 44))
  variables = model.init(jax.random.key(1), sils)
  tx = optax.sgd(0.1)
  opt_state = tx.init(variables['params'])

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      out = model.apply({'params': p}, sils, train=True)
      return jnp.mean(jnp.square(out['embeddings']))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  params, opt_state, loss0 = step(variables['params'], opt_state)
  _, _, loss1 = step(params, opt_state)
  assert np.isfinite(loss0) and loss1 < loss0


def test_registry_errors():
  with pytest.raises(ValueError, match='gaitset'):
    models.get_model('gaitsett')
  with pytest.raises(ValueError, match='tiny'):
    models.get_model('gaitset', variant='small')
  with pytest.raises(TypeError, match='hiden_dim'):
    models.get_model('gaitset', variant='tiny', hiden_dim=3)
  assert 'gaitset' in models.model_names()
  assert set(models.variant_names('gaitset')) == {'casia_b', 'oumvlp', 'tiny'}
