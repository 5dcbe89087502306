"""Sharded losses equal the single-device losses, in value and gradient.

Each loss runs inside ``jax.jit(jax.shard_map(..., in_specs=P('data'),
out_specs=P()))`` on 4 simulated CPU devices, each holding a quarter of the
batch, with ``jax.grad`` taken outside; the last test takes it inside the
per-device function, as the train step does. The reference is the same loss
on one device over the whole batch. Labels are shuffled so that classes
straddle devices; a term computed redundantly on every device from the
all-gathered batch would have its gradient counted once per device.
"""

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from gait_jax import losses
from gait_jax.losses import _common

RTOL = 1e-5
NUM_DEVICES = 4


@pytest.fixture(scope='module')
def mesh():
  assert len(jax.devices()) >= NUM_DEVICES
  return jax.make_mesh((NUM_DEVICES,), ('data',))


def make_batch(p=4, k=4, parts=3, channels=8, classes=None, seed=0):
  rng = np.random.default_rng(seed)
  n = p * k
  labels = rng.permutation(np.repeat(rng.permutation(50)[:p], k))
  emb = rng.normal(size=(n, parts, channels)).astype(np.float32)
  logits = rng.normal(size=(n, classes or 50, parts)).astype(np.float32)
  return emb, labels.astype(np.int32), logits


def compare(mesh, fn, *args):
  """fn(*args, axis_name) -> (scalar, aux); checks value, aux and gradients.

  The gradient is taken w.r.t. every float32 argument.
  """
  nargs = len(args)
  floats = tuple(i for i, a in enumerate(args) if a.dtype == np.float32)
  single = jax.jit(jax.value_and_grad(lambda *a: fn(*a, None),
                                      argnums=floats, has_aux=True))
  sharded = jax.jit(jax.value_and_grad(jax.shard_map(
      lambda *a: fn(*a, 'data'), mesh=mesh,
      in_specs=(P('data'),) * nargs, out_specs=P()), argnums=floats,
                                       has_aux=True))
  put = [jax.device_put(a, NamedSharding(mesh, P('data'))) for a in args]
  with jax.set_mesh(mesh):
    (value, aux), grads = sharded(*put)
  (ref_value, ref_aux), ref_grads = single(*args)
  np.testing.assert_allclose(value, ref_value, rtol=RTOL)
  assert set(aux) == set(ref_aux)
  for key in ref_aux:
    np.testing.assert_allclose(aux[key], ref_aux[key], rtol=RTOL,
                               err_msg=key)
  for g, r in zip(grads, ref_grads):
    r = np.asarray(r)
    assert np.abs(r).max() > 0
    np.testing.assert_allclose(g, r, rtol=RTOL, atol=1e-6 * np.abs(r).max())


@pytest.mark.parametrize('k,opts', [
    (4, dict()),
    (4, dict(pair_weight=True, weight_norm='per_part',
             margin_mode='class_adaptive')),
    (None, dict(pair_weight=True)),
])
def test_triplet(mesh, monkeypatch, k, opts):
  # Several row chunks per device on the masked (samples_per_class=None) path.
  monkeypatch.setattr(_common, 'MASKED_BLOCK_ELEMENTS', 3 * 16 * 16 * 3)
  emb, labels, _ = make_batch()
  if k is None:
    labels[:5] = labels[0]  # Unequal class sizes (not P×K).
  fn = lambda e, y, a: losses.triplet_loss(e, y, samples_per_class=k,
                                           axis_name=a, **opts)
  compare(mesh, fn, emb, labels)


def test_uniformity(mesh):
  emb, labels, _ = make_batch()

  def fn(e, y, axis_name):
    kw = dict(t=2.0, axis_name=axis_name)
    a, _ = losses.uniformity_loss(e, y, samples_per_class=4, **kw)
    b, _ = losses.uniformity_loss(e, y, over='centers', **kw)
    c, _ = losses.uniformity_loss(e, y, over='samples', **kw)
    return a + 0.5 * b + 0.25 * c, dict(centers_k=a, centers=b, samples=c)

  compare(mesh, fn, emb, labels)


def test_pair_softmax(mesh, monkeypatch):
  monkeypatch.setattr(_common, 'MASKED_BLOCK_ELEMENTS', 3 * 16 * 16 * 2)
  emb, labels, _ = make_batch()
  emb = emb * 0.3  # Keeps the softplus out of its linear regime.

  def fn(e, y, axis_name):
    a, _ = losses.pair_softmax_loss(e, y, samples_per_class=4,
                                    axis_name=axis_name)
    b, _ = losses.pair_softmax_loss(e, y, axis_name=axis_name)
    return a + 0.5 * b, dict(pk=a, masked=b)

  compare(mesh, fn, emb, labels)


def test_cross_entropy(mesh):
  _, labels, logits = make_batch()
  labels = labels % 50
  fn = lambda z, y, a: losses.cross_entropy_loss(z, y, axis_name=a)
  compare(mesh, fn, logits, labels)


def test_compute_loss_all_terms(mesh):
  emb, labels, logits = make_batch()
  labels = labels % 50
  cfg = losses.get_loss_config(
      'gil', triplet=dict(margin_mode='class_adaptive'),
      pair_softmax=dict(weight=0.5), ce=dict(weight=1.0))
  fn = lambda e, z, y, a: losses.compute_loss(
      {'embeddings': e * 0.3, 'logits': z}, y, cfg, samples_per_class=4,
      axis_name=a)
  compare(mesh, fn, emb, logits, labels)


@pytest.mark.parametrize('k,preset', [(4, 'gil'), (None, 'triplet')])
def test_gradient_taken_inside_shard_map(mesh, k, preset):
  """The train step's mode: jax.grad inside the per-device function.

  Each device's gradient w.r.t. its own shard of embeddings and logits is
  that shard's rows of the single-device gradient (the psum of the loss
  transposes to a broadcast, the all_gather to a reduce-scatter).
  """
  emb, labels, logits = make_batch()
  labels = labels % 50
  overrides = dict(ce=dict(weight=1.0))
  if preset == 'gil':
    overrides.update(triplet=dict(margin_mode='class_adaptive'),
                     pair_softmax=dict(weight=0.5))
  cfg = losses.get_loss_config(preset, **overrides)

  def loss_fn(e, z, y, axis_name):
    return losses.compute_loss({'embeddings': e * 0.3, 'logits': z}, y, cfg,
                               samples_per_class=k, axis_name=axis_name)[0]

  per_device = jax.jit(jax.shard_map(
      lambda e, z, y: jax.grad(loss_fn, argnums=(0, 1))(e, z, y, 'data'),
      mesh=mesh, in_specs=(P('data'),) * 3, out_specs=P('data')))
  put = [jax.device_put(a, NamedSharding(mesh, P('data')))
         for a in (emb, logits, labels)]
  with jax.set_mesh(mesh):
    grads = per_device(*put)
  ref = jax.jit(jax.grad(loss_fn, argnums=(0, 1)), static_argnums=3)(
      emb, logits, labels, None)
  for g, r in zip(grads, ref):
    r = np.asarray(r)
    np.testing.assert_allclose(g, r, rtol=RTOL, atol=1e-6 * np.abs(r).max())
