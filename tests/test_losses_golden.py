"""Golden values of the losses (the loss specification's worked examples).

The values were produced by OpenGait's and the GIL authors' PyTorch code; the
hand cases are float64 recomputations of the authors' semantics.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax import losses

RTOL = 1e-5
LABELS = np.repeat(np.arange(4), 4)  # P=4, K=4


def det(shape, a, b):
  k = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
  return np.sin(a * k + b).astype(np.float32)


def jitted(fn, *args, **kwargs):
  """fn(*args, **kwargs) under jit (keyword options are static)."""
  return jax.jit(lambda *a: fn(*a, **kwargs))(*args)


def golden_embeddings():
  # Given laid out [n, c, p] (OpenGait); the library takes [n, p, c].
  return det((16, 8, 3), 0.37, 0.11).transpose(0, 2, 1)


HAND_A = np.array([[[1, 0]], [[0, 1]], [[0.9, 0.1]], [[0.1, 0.9]]],
                  np.float32)  # [n=4, p=1, c=2]
HAND_B = np.concatenate(
    [HAND_A, np.array([[[2, 0]], [[0, 2]], [[1, 1]], [[-2, 0.5]]],
                      np.float32)], axis=1)  # [4, 2, 2]
HAND_LABELS = np.array([0, 0, 1, 1])
HAND_A_WEIGHTS = np.array([
    [1.019608, 2.000000, 1.025604, 1.891734],
    [2.000000, 1.019608, 1.891734, 1.025604],
    [1.025604, 1.891734, 1.019608, 1.784792],
    [1.891734, 1.025604, 1.784792, 1.019608]])


@pytest.mark.parametrize('k', [4, None])
def test_opengait_triplet(k):
  loss, aux = jitted(losses.triplet_loss, golden_embeddings(), LABELS,
                     margin=0.2, samples_per_class=k)
  np.testing.assert_allclose(aux['per_part'],
                             [1.377514, 1.371898, 1.373891], rtol=RTOL)
  np.testing.assert_allclose(loss, 1.374434, rtol=RTOL)
  np.testing.assert_array_equal(aux['nonzero'], [402, 404, 405])
  np.testing.assert_allclose(aux['hard_loss'],
                             [3.543729, 3.601427, 3.684257], rtol=RTOL)
  np.testing.assert_allclose(aux['mean_dist'],
                             [2.522535, 2.523233, 2.526204], rtol=RTOL)
  np.testing.assert_allclose(aux['mean_pair_weight'], 1.0, rtol=RTOL)
  np.testing.assert_allclose(aux['mean_margin'], 0.2, rtol=RTOL)


@pytest.mark.parametrize('k', [4, None])
def test_rc_weighted_triplet(k):
  _, aux = jitted(losses.triplet_loss, golden_embeddings(), LABELS,
                  pair_weight=True, samples_per_class=k)
  np.testing.assert_allclose(aux['per_part'],
                             [3.310263, 3.312804, 3.315911], rtol=RTOL)
  np.testing.assert_array_equal(aux['nonzero'], [355, 355, 356])


@pytest.mark.parametrize('k', [4, None])
def test_rc_info_loss(k):
  loss, aux = jitted(losses.pair_softmax_loss, golden_embeddings(), LABELS,
                     temperature=0.1, samples_per_class=k)
  expected = [15.483605, 15.504405, 15.597634]
  np.testing.assert_allclose(aux['per_part'], expected, rtol=RTOL)
  np.testing.assert_allclose(loss, np.mean(expected), rtol=RTOL)
  assert float(aux['count']) == 16 * 4 * 12


def test_cross_entropy():
  logits = det((16, 10, 3), 0.23, 0.5)  # [n, classes, p]
  loss, _ = jitted(losses.cross_entropy_loss, logits, LABELS, scale=16.0,
                   label_smoothing=0.1)
  np.testing.assert_allclose(loss, 15.96641, rtol=RTOL)
  loss, _ = jitted(losses.cross_entropy_loss, logits, LABELS, scale=1.0,
                   label_smoothing=0.0)
  np.testing.assert_allclose(loss, 2.548816, rtol=RTOL)


@pytest.mark.parametrize('k', [2, None])
def test_hand_case_a(k):
  w = jitted(losses.pair_weights, HAND_A)
  np.testing.assert_allclose(w[0], HAND_A_WEIGHTS, rtol=RTOL)
  loss, aux = jitted(losses.triplet_loss, HAND_A, HAND_LABELS,
                     pair_weight=True, samples_per_class=k)
  np.testing.assert_allclose(loss, 1.137632, rtol=RTOL)
  np.testing.assert_array_equal(aux['nonzero'], [10])
  loss, aux = jitted(losses.triplet_loss, HAND_A, HAND_LABELS,
                     samples_per_class=k)
  np.testing.assert_allclose(loss, 0.529983, rtol=RTOL)
  np.testing.assert_array_equal(aux['nonzero'], [12])


@pytest.mark.parametrize('k', [2, None])
def test_hand_case_b_global_normaliser_couples_parts(k):
  w = jitted(losses.pair_weights, HAND_B)  # [p, n, n]
  np.testing.assert_allclose(w[0, 0, 1], 1.512526, rtol=RTOL)
  # Per part, part 0 gets its own normaliser back (case A's weights).
  w_part = jitted(losses.pair_weights, HAND_B, weight_norm='per_part')
  np.testing.assert_allclose(w_part[0], HAND_A_WEIGHTS, rtol=RTOL)
  loss, aux = jitted(losses.triplet_loss, HAND_B, HAND_LABELS,
                     pair_weight=True, samples_per_class=k)
  np.testing.assert_allclose(aux['per_part'], [0.887379, 2.782331],
                             rtol=RTOL)
  np.testing.assert_array_equal(aux['nonzero'], [10, 6])
  np.testing.assert_allclose(loss, 1.834855, rtol=RTOL)
  _, aux = jitted(losses.triplet_loss, HAND_B, HAND_LABELS,
                  samples_per_class=k)
  np.testing.assert_allclose(aux['per_part'], [0.529983, 1.358762],
                             rtol=RTOL)
  # With the per-part normaliser part 0 is exactly hand case A again.
  _, aux = jitted(losses.triplet_loss, HAND_B, HAND_LABELS, pair_weight=True,
                  weight_norm='per_part', samples_per_class=k)
  np.testing.assert_allclose(aux['per_part'][0], 1.137632, rtol=RTOL)


def test_compute_loss_presets_match_terms():
  """compute_loss with each preset reproduces the golden term values."""
  e = golden_embeddings()
  cfg = losses.get_loss_config('triplet')
  loss, metrics = jitted(losses.compute_loss, {'embeddings': e}, LABELS,
                         loss_config=cfg, samples_per_class=4)
  np.testing.assert_allclose(loss, 1.374434, rtol=RTOL)
  np.testing.assert_allclose(metrics['triplet/nonzero'],
                             np.mean([402, 404, 405]), rtol=RTOL)
  assert 'loss/uniformity' not in metrics
  cfg = losses.get_loss_config(
      'gil_rc', pair_softmax=dict(weight=1.0),
      ce=dict(weight=1.0, scale=1.0, label_smoothing=0.0))
  logits = det((16, 10, 3), 0.23, 0.5)
  loss, metrics = jitted(losses.compute_loss,
                         {'embeddings': e, 'logits': logits}, LABELS,
                         loss_config=cfg, samples_per_class=4)
  info = np.mean([15.483605, 15.504405, 15.597634])
  weighted = np.mean([3.310263, 3.312804, 3.315911])
  np.testing.assert_allclose(metrics['loss/triplet'], weighted, rtol=RTOL)
  np.testing.assert_allclose(metrics['loss/pair_softmax'], info, rtol=RTOL)
  np.testing.assert_allclose(metrics['loss/ce'], 2.548816, rtol=RTOL)
  np.testing.assert_allclose(loss, weighted + info + 2.548816, rtol=RTOL)
  np.testing.assert_allclose(metrics['loss/total'], loss, rtol=RTOL)
  for value in metrics.values():
    assert value.shape == () and value.dtype == jnp.float32
