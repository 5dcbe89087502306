"""The losses against independent PyTorch and NumPy re-implementations.

The PyTorch references follow the specification (and OpenGait / the GIL
authors' code) literally: distances by the expanded formula, every triplet
enumerated as index lists with ``torch.where``, autograd for gradients. The
only deviation is that an anchor's distance to itself is set to exactly 0 on
both sides: the expanded formula leaves rounding noise of order
sqrt(eps)·||e|| there, which differs between two float32 implementations.
"""

import itertools

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gait_jax import losses

RTOL = 1e-5


def pk_batch(p, k, parts, channels, seed, shuffle=True):
  rng = np.random.default_rng(seed)
  labels = np.repeat(rng.permutation(100)[:p], k)
  if shuffle:
    labels = rng.permutation(labels)
  emb = rng.normal(size=(p * k, parts, channels)) / np.sqrt(channels)
  return emb.astype(np.float32), labels.astype(np.int64)


# ----------------------------------------------------------------------------
# PyTorch references.


def torch_distances(e):
  """[p, n, c] -> [p, n, n], expanded formula, self-distance exactly 0."""
  sq = (e ** 2).sum(-1)
  d = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * e.matmul(e.transpose(1, 2))
  d = torch.sqrt(F.relu(d))
  eye = torch.eye(e.shape[1], dtype=torch.bool)
  return torch.where(eye, torch.zeros_like(d), d)


def torch_triplets(labels):
  """Index lists (a, q, m) of every triplet, as the reference builds them."""
  y = torch.as_tensor(labels)
  match = y.unsqueeze(1) == y.unsqueeze(0)
  return torch.where(match.unsqueeze(2) & (~match).unsqueeze(1))


def torch_triplet_loss(emb, labels, margin=0.2, weighted=False):
  e = emb.permute(1, 0, 2).float()  # [p, n, c]
  dist = torch_distances(e)
  if weighted:
    u = F.normalize(e, dim=-1)
    w = 1 - (u.matmul(u.transpose(1, 2)) + 1) / 2 + 0.01
    w = 1 + w / w.max()
    dist = dist * w.detach()
  a, q, m = torch_triplets(labels)
  loss = F.relu(dist[:, a, q] - dist[:, a, m] + margin)  # [p, T]
  num = (loss != 0).sum(-1).float()
  avg = loss.sum(-1) / (num + 1e-9)
  avg = torch.where(num == 0, torch.zeros_like(avg), avg)
  return avg.mean(), avg, num


def torch_info_loss(emb, labels, temperature=0.1):
  e = emb.permute(1, 0, 2).float()  # [p, n, c]
  s = e.matmul(e.transpose(1, 2))  # [p, n, n]
  a, q, m = torch_triplets(labels)
  logits = torch.stack([s[:, a, q], s[:, a, m]], -1) / temperature
  target = torch.zeros(logits.shape[:2], dtype=torch.long)
  ce = F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1),
                       reduction='none').reshape(target.shape)
  per_part = ce.mean(-1)
  return per_part.mean(), per_part


def torch_ce(logits, labels, scale, smoothing):
  target = torch.as_tensor(labels).unsqueeze(1).repeat(1, logits.shape[2])
  return F.cross_entropy(logits.float() * scale, target,
                         label_smoothing=smoothing)


def torch_uniformity_centers(emb, labels, t):
  e = F.normalize(emb.permute(1, 0, 2).double(), dim=-1)  # [p, n, c]
  classes = sorted(set(labels.tolist()))
  mu = torch.stack([e[:, labels == c].mean(1) for c in classes], 1)
  mu = F.normalize(mu, dim=-1)  # [p, P, c]
  terms = [-t * ((mu[:, i] - mu[:, j]) ** 2).sum(-1)
           for i, j in itertools.permutations(range(len(classes)), 2)]
  terms = torch.stack(terms, -1)  # [p, P(P-1)]
  per_part = torch.logsumexp(terms, -1) - np.log(terms.shape[-1])
  return per_part.mean()


# ----------------------------------------------------------------------------
# Helpers.


def jax_value_and_grad(fn, x):
  (value, aux), grad = jax.jit(jax.value_and_grad(fn, has_aux=True))(x)
  return np.asarray(value), jax.tree.map(np.asarray, aux), np.asarray(grad)


def torch_value_and_grad(fn, x):
  x = torch.tensor(x, requires_grad=True)
  out = fn(x)
  value = out[0] if isinstance(out, tuple) else out
  value.backward()
  rest = [o.detach().numpy() for o in out[1:]] if isinstance(out, tuple) else []
  return value.detach().numpy(), rest, x.grad.numpy()


def assert_grads_close(g, ref, rtol=RTOL):
  """Relative error 1e-5 in norm, and elementwise up to cancellation noise.

  Elements that are sums of many cancelling per-triplet terms can be tiny,
  so the elementwise check takes an absolute floor of 1e-5 of the largest.
  """
  scale = np.abs(ref).max()
  assert scale > 0
  rel = np.linalg.norm(g - ref) / np.linalg.norm(ref)
  assert rel < rtol, rel
  np.testing.assert_allclose(g, ref, rtol=rtol, atol=rtol * scale)


# ----------------------------------------------------------------------------
# Tests.

# (P, K, parts, channels): tiny, GaitGL-CASIA-B-like, GaitSet-CASIA-B-like.
SHAPES = [(4, 4, 1, 8), (8, 8, 16, 64), (8, 16, 62, 256)]


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s)))
def test_triplet_matches_torch(shape, weighted):
  p, k, parts, channels = shape
  emb, labels = pk_batch(p, k, parts, channels, seed=parts + weighted)
  fn = lambda e: losses.triplet_loss(e, labels, pair_weight=weighted,
                                     samples_per_class=k)
  value, aux, grad = jax_value_and_grad(fn, emb)
  ref_value, (ref_parts, ref_num), ref_grad = torch_value_and_grad(
      lambda e: torch_triplet_loss(e, labels, weighted=weighted), emb)
  np.testing.assert_allclose(value, ref_value, rtol=RTOL)
  # Among millions of triplets a few lie within float32 rounding of the
  # hinge and may switch sides between two implementations; such a part
  # shows up as a non-zero count off by one. Every other part must match
  # to 1e-5 in value and gradient (parts are independent: R has no
  # gradient), the switched ones to 1e-4 in value and 1e-2 in gradient.
  flipped = aux['nonzero'] != ref_num
  assert flipped.sum() <= parts // 10, (aux['nonzero'], ref_num)
  np.testing.assert_allclose(aux['nonzero'], ref_num, atol=1)
  np.testing.assert_allclose(aux['per_part'][~flipped], ref_parts[~flipped],
                             rtol=RTOL)
  np.testing.assert_allclose(aux['per_part'][flipped], ref_parts[flipped],
                             rtol=1e-4)
  assert_grads_close(grad[:, ~flipped], ref_grad[:, ~flipped])
  if flipped.any():
    assert_grads_close(grad[:, flipped], ref_grad[:, flipped], rtol=1e-2)


@pytest.mark.parametrize('labels,k', [
    ([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 0, 1], None),  # Unequal classes.
    ([2, 0, 1, 0, 2, 1, 1, 2, 2, 0, 0, 1], 4),  # P×K = 3×4, shuffled.
])
def test_triplet_duplicates_match_torch(labels, k):
  """A duplicated sequence counts as a distinct sample, on both paths.

  Integer-valued embeddings make every squared distance exact in float32,
  so the duplicate pair has distance exactly 0 on both sides.
  """
  rng = np.random.default_rng(3)
  labels = np.array(labels)
  emb = rng.integers(-3, 4, size=(12, 5, 6)).astype(np.float32)
  emb[10] = emb[1]  # The same sequence twice, same identity.
  assert labels[10] == labels[1]
  for weighted in (False, True):
    fn = lambda e, w=weighted: losses.triplet_loss(
        e, labels, pair_weight=w, samples_per_class=k)
    value, aux, grad = jax_value_and_grad(fn, emb)
    ref_value, (ref_parts, ref_num), ref_grad = torch_value_and_grad(
        lambda e, w=weighted: torch_triplet_loss(e, labels, weighted=w), emb)
    np.testing.assert_allclose(value, ref_value, rtol=RTOL)
    np.testing.assert_allclose(aux['per_part'], ref_parts, rtol=RTOL)
    np.testing.assert_array_equal(aux['nonzero'], ref_num)
    assert_grads_close(grad, ref_grad)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize('shape,k', [((4, 4, 1, 8), None),
                                     ((8, 8, 16, 64), 8)])
def test_pair_softmax_matches_torch(shape, k):
  p, kk, parts, channels = shape
  emb, labels = pk_batch(p, kk, parts, channels, seed=7)
  emb = emb * 3.0
  fn = lambda e: losses.pair_softmax_loss(e, labels, samples_per_class=k)
  value, aux, grad = jax_value_and_grad(fn, emb)
  ref_value, (ref_parts,), ref_grad = torch_value_and_grad(
      lambda e: torch_info_loss(e, labels), emb)
  np.testing.assert_allclose(value, ref_value, rtol=RTOL)
  np.testing.assert_allclose(aux['per_part'], ref_parts, rtol=RTOL)
  assert_grads_close(grad, ref_grad)


@pytest.mark.parametrize('scale,smoothing', [(16.0, 0.1), (1.0, 0.0)])
def test_cross_entropy_matches_torch(scale, smoothing):
  rng = np.random.default_rng(5)
  logits = rng.uniform(-1, 1, size=(32, 74, 16)).astype(np.float32)
  labels = rng.integers(0, 74, size=32)
  fn = lambda z: losses.cross_entropy_loss(z, labels, scale=scale,
                                           label_smoothing=smoothing)
  value, aux, grad = jax_value_and_grad(fn, logits)
  ref_value, _, ref_grad = torch_value_and_grad(
      lambda z: torch_ce(z, labels, scale, smoothing), logits)
  np.testing.assert_allclose(value, ref_value, rtol=RTOL)
  assert_grads_close(grad, ref_grad)
  accuracy = np.mean(logits.argmax(1) == labels[:, None])
  np.testing.assert_allclose(aux['accuracy'], accuracy, rtol=RTOL)


@pytest.mark.parametrize('k', [4, None])
def test_uniformity_centers_matches_torch(k):
  emb, labels = pk_batch(6, 4, 3, 16, seed=11)
  fn = lambda e: losses.uniformity_loss(e, labels, t=2.0,
                                        samples_per_class=k)
  value, _, grad = jax_value_and_grad(fn, emb)
  ref_value, _, ref_grad = torch_value_and_grad(
      lambda e: torch_uniformity_centers(e, labels, 2.0), emb)
  np.testing.assert_allclose(value, ref_value, rtol=RTOL)
  assert_grads_close(grad, ref_grad.astype(np.float32))


# ----------------------------------------------------------------------------
# NumPy references (float64, explicit loops over classes and triplets).


def np_normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_centers(emb, labels):
  """Normalised class centres [p, P, c] and the sorted classes."""
  u = np_normalize(emb.astype(np.float64).transpose(1, 0, 2))  # [p, n, c]
  classes = np.unique(labels)
  mu = np.stack([u[:, labels == c].mean(1) for c in classes], 1)
  return np_normalize(mu), classes


def np_uniformity(emb, labels, t, over):
  if over == 'centers':
    points, groups = np_centers(emb, labels)
  else:
    points = np_normalize(emb.astype(np.float64).transpose(1, 0, 2))
    groups = labels
  out = []
  for x in points:
    terms = [np.exp(-t * np.sum((x[i] - x[j]) ** 2))
             for i in range(len(x)) for j in range(len(x))
             if groups[i] != groups[j]]
    out.append(np.log(np.mean(terms)))
  return np.mean(out)


def np_adaptive_margin_triplet(emb, labels, m0):
  mu, classes = np_centers(emb, labels)
  e = emb.astype(np.float64).transpose(1, 0, 2)
  per_part, margins_all = [], []
  for part in range(e.shape[0]):
    delta = np.array([
        min(np.linalg.norm(mu[part, a] - mu[part, b])
            for b in range(len(classes)) if b != a)
        for a in range(len(classes))])
    margin = m0 * np.clip(delta.mean() / (delta + 1e-6), 0.5, 2.0)
    x = e[part]
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))
    total, count = 0.0, 0
    for a, q, m in itertools.product(range(len(x)), repeat=3):
      if labels[q] == labels[a] and labels[m] != labels[a]:
        ma = margin[np.searchsorted(classes, labels[a])]
        margins_all.append(ma)
        ell = max(d[a, q] - d[a, m] + ma, 0.0)
        total += ell
        count += ell > 0
    per_part.append(total / (count + 1e-9) if count else 0.0)
  return np.mean(per_part), np.mean(margins_all)


@pytest.mark.parametrize('over,k,t', [('centers', 4, 2.0),
                                      ('centers', None, 5.0),
                                      ('samples', None, 2.0)])
def test_uniformity_matches_numpy(over, k, t):
  emb, labels = pk_batch(5, 4, 2, 8, seed=13)
  loss, aux = jax.jit(lambda e: losses.uniformity_loss(
      e, labels, t=t, over=over, samples_per_class=k))(emb)
  np.testing.assert_allclose(loss, np_uniformity(emb, labels, t, over),
                             rtol=RTOL)
  assert aux['per_part'].shape == (2,)


@pytest.mark.parametrize('k', [4, None])
def test_class_adaptive_margin_matches_numpy(k):
  emb, labels = pk_batch(5, 4, 2, 8, seed=17)
  loss, aux = jax.jit(lambda e: losses.triplet_loss(
      e, labels, margin=0.2, margin_mode='class_adaptive',
      samples_per_class=k))(emb)
  ref_loss, ref_margin = np_adaptive_margin_triplet(emb, labels, 0.2)
  np.testing.assert_allclose(loss, ref_loss, rtol=RTOL)
  # Without pair weights the effective margin is the class margin itself.
  np.testing.assert_allclose(aux['mean_margin'], ref_margin, rtol=RTOL)
  assert not np.isclose(ref_margin, 0.2, rtol=1e-3)
