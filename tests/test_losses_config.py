"""Loss presets, overrides, and the errors for bad options and inputs."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gait_jax import losses


def tiny_batch(p=3, k=2, parts=2, channels=4):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(p), k)
  emb = rng.normal(size=(p * k, parts, channels)).astype(np.float32)
  return emb, labels


def test_presets():
  cfg = losses.get_loss_config('triplet')
  assert cfg.preset == 'triplet'
  assert set(cfg.keys()) == {'preset', 'triplet', 'uniformity',
                             'pair_softmax', 'ce'}
  assert cfg.triplet.to_dict() == dict(
      weight=1.0, margin=0.2, pair_weight=False, weight_norm='global',
      margin_mode='fixed', hard_exclusion=False, hard_exclusion_frac=2 / 3)
  assert cfg.uniformity.weight == 0 and cfg.pair_softmax.weight == 0
  assert cfg.ce.to_dict() == dict(weight=0.0, scale=16.0, label_smoothing=0.1)

  rc = losses.get_loss_config('gil_rc')
  assert rc.triplet.pair_weight and rc.triplet.weight_norm == 'global'
  assert rc.triplet.margin_mode == 'fixed' and rc.uniformity.weight == 0

  gil = losses.get_loss_config('gil')
  assert gil.triplet.pair_weight and gil.triplet.margin_mode == 'fixed'
  assert gil.uniformity.to_dict() == dict(weight=0.01, t=2.0, over='centers')
  assert gil.pair_softmax.to_dict() == dict(weight=0.0, temperature=0.1)
  assert tuple(losses.PRESETS) == ('triplet', 'gil_rc', 'gil')


def test_overrides_merge_and_keep_types():
  cfg = losses.get_loss_config('gil', ce=dict(weight=1, scale=1.0,
                                              label_smoothing=0.0))
  assert cfg.ce.to_dict() == dict(weight=1.0, scale=1.0, label_smoothing=0.0)
  assert isinstance(cfg.ce.weight, float)
  assert cfg.uniformity.weight == 0.01  # Untouched sections keep the preset.
  cfg.ce.scale = 16.5  # Still a float field (CLI overrides keep types).
  # Every call builds a fresh config.
  assert losses.get_loss_config('gil').ce.weight == 0.0


def test_unknown_preset_lists_the_valid_ones():
  with pytest.raises(ValueError, match=r"'foo'.*triplet.*gil_rc.*gil"):
    losses.get_loss_config('foo')


@pytest.mark.parametrize('overrides,match', [
    (dict(triplet=dict(margin_mode='foo')),
     r"triplet\.margin_mode='foo'.*'fixed', 'class_adaptive'"),
    (dict(triplet=dict(weight_norm='all')),
     r"triplet\.weight_norm='all'.*'global', 'per_part'"),
    (dict(uniformity=dict(over='bar')),
     r"uniformity\.over='bar'.*'centers', 'samples'"),
    (dict(triplet=dict(marg=0.3)), r'Unknown key triplet\.marg'),
    (dict(softmax=dict(weight=1.0)), r"Unknown loss section 'softmax'"),
    (dict(triplet=dict(pair_weight=1)), r'triplet\.pair_weight=1.*bool'),
    (dict(uniformity=dict(weight=-1.0)), r'uniformity\.weight must be >= 0'),
    (dict(uniformity=dict(t=0.0)), r'uniformity\.t must be positive'),
    (dict(ce=dict(label_smoothing=1.0)), r'ce\.label_smoothing'),
])
def test_bad_options_name_the_key(overrides, match):
  with pytest.raises(ValueError, match=match):
    losses.get_loss_config('gil', **overrides)


def test_compute_loss_validates_an_edited_config():
  emb, labels = tiny_batch()
  cfg = losses.get_loss_config('gil')
  cfg.triplet.margin_mode = 'foo'
  with pytest.raises(ValueError, match=r'triplet\.margin_mode'):
    losses.compute_loss({'embeddings': emb}, labels, cfg, samples_per_class=2)


@pytest.mark.parametrize('fn,kwargs,match', [
    (losses.triplet_loss, dict(margin_mode='foo'),
     r"margin_mode='foo'.*'fixed', 'class_adaptive'"),
    (losses.triplet_loss, dict(weight_norm='bar'), r"weight_norm='bar'"),
    (losses.uniformity_loss, dict(over='bar'),
     r"over='bar'.*'centers', 'samples'"),
    (losses.triplet_loss, dict(samples_per_class=4),
     r'samples_per_class=4 does not divide .* n=6'),
    (losses.triplet_loss, dict(samples_per_class=0), r'samples_per_class'),
    (losses.pair_softmax_loss, dict(samples_per_class=2.0),
     r'samples_per_class'),
    (losses.pair_softmax_loss, dict(temperature=0.0), r'temperature'),
])
def test_bad_arguments(fn, kwargs, match):
  emb, labels = tiny_batch()
  with pytest.raises(ValueError, match=match):
    fn(emb, labels, **kwargs)


def test_bad_shapes():
  emb, labels = tiny_batch()
  with pytest.raises(ValueError, match=r'labels must have shape \(6,\)'):
    losses.triplet_loss(emb, labels[:5])
  with pytest.raises(ValueError, match=r'embeddings must have shape'):
    losses.triplet_loss(emb[:, 0], labels)
  with pytest.raises(ValueError, match=r'labels must be integers'):
    losses.uniformity_loss(emb, labels.astype(np.float32))
  with pytest.raises(ValueError, match=r'logits must have shape'):
    losses.cross_entropy_loss(np.zeros((6, 5)), labels)
  with pytest.raises(ValueError, match=r'labels must have shape \(6,\)'):
    losses.cross_entropy_loss(np.zeros((6, 5, 2)), labels[None])
  with pytest.raises(ValueError, match=r'label_smoothing'):
    losses.cross_entropy_loss(np.zeros((6, 5, 2)), labels,
                              label_smoothing=-0.1)


def test_compute_loss_needs_logits_for_ce():
  emb, labels = tiny_batch()
  cfg = losses.get_loss_config('triplet', ce=dict(weight=1.0))
  with pytest.raises(ValueError, match=r'logits'):
    losses.compute_loss({'embeddings': emb}, labels, cfg, samples_per_class=2)
  with pytest.raises(ValueError, match=r'embeddings'):
    losses.compute_loss({'emb': emb}, labels, cfg, samples_per_class=2)


def test_labels_that_are_not_pxk_give_nan():
  emb, labels = tiny_batch()
  labels = np.array([0, 0, 0, 1, 2, 2])  # Not 3 classes × 2.
  for fn in (losses.triplet_loss, losses.pair_softmax_loss,
             losses.uniformity_loss):
    for k, check in ((2, np.isnan), (None, np.isfinite)):
      loss = jax.jit(lambda e, y, f=fn, k=k: f(e, y, samples_per_class=k)[0])
      assert check(loss(emb, labels))


def test_metrics_and_skipped_terms():
  emb, labels = tiny_batch()
  logits = np.random.default_rng(1).normal(size=(6, 3, 2)).astype(np.float32)
  outputs = {'embeddings': emb, 'logits': logits}
  cfg = losses.get_loss_config('triplet')
  cfg.lock()
  frozen = ml_collections.FrozenConfigDict(cfg)
  step = jax.jit(lambda o, y: losses.compute_loss(o, y, frozen,
                                                  samples_per_class=2))
  loss, metrics = step(outputs, labels)
  assert set(metrics) == {
      'loss/total', 'loss/triplet', 'triplet/nonzero',
      'triplet/mean_pair_weight', 'triplet/mean_margin', 'triplet/hard_loss',
      'triplet/mean_dist', 'uniformity/value'}
  np.testing.assert_allclose(metrics['loss/total'], loss)
  np.testing.assert_allclose(metrics['triplet/mean_pair_weight'], 1.0)
  # The diagnostic uniformity carries no gradient when its weight is 0.
  grad = jax.jit(jax.grad(lambda e: losses.compute_loss(
      {'embeddings': e}, labels, cfg, samples_per_class=2)[0]))(emb)
  ref = jax.jit(jax.grad(lambda e: losses.triplet_loss(
      e, labels, samples_per_class=2)[0]))(emb)
  np.testing.assert_allclose(grad, ref, rtol=1e-6)

  cfg = losses.get_loss_config('gil', ce=dict(weight=0.5),
                               pair_softmax=dict(weight=0.25))
  loss, metrics = jax.jit(lambda o, y: losses.compute_loss(
      o, y, cfg, samples_per_class=2))(outputs, labels)
  assert {'loss/uniformity', 'loss/ce', 'ce/accuracy',
          'loss/pair_softmax'} <= set(metrics)
  expected = (metrics['loss/triplet']
              + cfg.uniformity.weight * metrics['loss/uniformity']
              + 0.25 * metrics['loss/pair_softmax'] + 0.5 * metrics['loss/ce'])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics['uniformity/value'],
                             metrics['loss/uniformity'])
  for value in metrics.values():
    assert value.shape == () and value.dtype == jnp.float32


def test_zero_gradient_at_coincident_embeddings():
  """Distances clamped at 0 have a zero (not NaN) gradient."""
  emb = np.zeros((4, 1, 3), np.float32)
  emb[2:] = 1.0
  labels = np.array([0, 0, 1, 1])
  cfg = losses.get_loss_config('gil', pair_softmax=dict(weight=1.0))
  grad = jax.jit(jax.grad(lambda e: losses.compute_loss(
      {'embeddings': e}, labels, cfg, samples_per_class=2)[0]))(emb)
  assert np.all(np.isfinite(grad))
  # All samples equal: every distance is 0, so every triplet term is the
  # margin whatever the pair weights, and no gradient flows through them.
  same = np.ones((4, 2, 3), np.float32)
  for k in (2, None):
    loss, grad = jax.jit(jax.value_and_grad(lambda e, k=k: losses.triplet_loss(
        e, labels, pair_weight=True, samples_per_class=k)[0]))(same)
    np.testing.assert_allclose(loss, 0.2, rtol=1e-6)
    np.testing.assert_array_equal(grad, 0.0)
