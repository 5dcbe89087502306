"""TrackletGait (arXiv 2508.02143 and its released code): Random Tracklet Sampling and the
Hardness-Exclusion triplet.

The references are the spec written out here (NumPy for the sampler, PyTorch
for the loss), independently of ``gait_jax``. The sampler reference consumes
the generator in the spec's order (the length index, then one start per
tracklet), so with the same generator it must give exactly the same indices.
"""

import math

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest
import torch

from conftest import blob_sequence
from gait_jax import config as config_lib
from gait_jax import losses
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data import transforms

# --- Random Tracklet Sampling.


def _ref_tracklet(rng, length, total=32, lengths=(8, 16, 32),
                  probs=(0.2, 0.3, 0.5)):
  span = lengths[int(rng.choice(len(lengths), p=np.array(probs)))]
  base = list(range(length))
  out = []
  for _ in range(total // span):
    if len(base) < span:  # Tiled ceil(span / len) + 1 times, kept.
      base = base * (math.ceil(span / len(base)) + 1)
    start = int(rng.integers(0, len(base) - span + 1))  # {0..len-span}
    out += base[start:start + span]
  return np.array(out)


def _draw(length, seed, **kw):
  return sampling.sample_frames(sampling.frame_rng(seed, 0, 0), length,
                                'tracklet', num_frames=32, **kw)


@pytest.mark.parametrize('length', [1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33,
                                    100])
def test_tracklet_matches_the_spec_exactly(length):
  for seed in range(40):
    got = _draw(length, seed)
    want = _ref_tracklet(sampling.frame_rng(seed, 0, 0), length)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (32,) and got.dtype == np.int64
    assert got.min() >= 0 and got.max() < length


def _tracklet_length(idx):
  """L of a draw from a long sequence: breaks lie only between tracklets."""
  breaks = set(np.flatnonzero(np.diff(idx) != 1) + 1)
  if breaks & {8, 24}:
    return 8
  return 16 if 16 in breaks else 32


def test_tracklet_lengths_follow_the_probabilities():
  draws = 4000
  counts = {8: 0, 16: 0, 32: 0}
  for seed in range(draws):
    counts[_tracklet_length(_draw(100_000, seed))] += 1
  expected = np.array([0.2, 0.3, 0.5]) * draws
  observed = np.array([counts[8], counts[16], counts[32]])
  chi2 = float(np.sum((observed - expected) ** 2 / expected))
  assert chi2 < 13.8, (observed, chi2)  # df 2, p = 0.001.


@pytest.mark.parametrize('length', [1, 3, 5, 8, 12, 20, 31, 40])
def test_tracklets_keep_order_modulo_tiling(length):
  for seed in range(30):
    rng = sampling.frame_rng(seed, 0, 0)
    span = (8, 16, 32)[int(rng.choice(3, p=[0.2, 0.3, 0.5]))]
    idx = _draw(length, seed)
    for t in range(32 // span):
      part = idx[t * span:(t + 1) * span]
      np.testing.assert_array_equal(np.diff(part) % length, 1 % length)


def test_short_sequences_are_tiled_with_the_extra_copy():
  # L = 8 forced on 5 frames: tiled 3 times (15 entries), start in 0..7.
  starts = set()
  for seed in range(300):
    idx = sampling.sample_frames(sampling.frame_rng(seed, 1, 2), 5, 'tracklet',
                                 num_frames=32, tracklet_lengths=(8,),
                                 tracklet_probs=(1.0,))
    assert idx.shape == (32,)
    for t in range(4):
      part = idx[t * 8:(t + 1) * 8]
      np.testing.assert_array_equal(part, (part[0] + np.arange(8)) % 5)
      starts.add(int(part[0]))
  assert starts == set(range(5))


def test_tracklet_is_deterministic_and_generalises():
  a = _draw(50, 7)
  np.testing.assert_array_equal(a, _draw(50, 7))
  assert any(not np.array_equal(a, _draw(50, s)) for s in range(8, 12))
  got = sampling.sample_frames(sampling.frame_rng(3, 4, 5), 11, 'tracklet',
                               num_frames=12, tracklet_lengths=(4, 6),
                               tracklet_probs=(0.5, 0.5))
  want = _ref_tracklet(sampling.frame_rng(3, 4, 5), 11, 12, (4, 6), (.5, .5))
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('kw,match', [
    (dict(num_frames=30), r'data\.num_frames=30'),
    (dict(tracklet_lengths=(8, 0)), r'data\.tracklet_lengths'),
    (dict(tracklet_lengths=(8, 16)), r'data\.tracklet_probs'),
    (dict(tracklet_probs=(0.5, 0.5, 0.5)), r'data\.tracklet_probs'),
])
def test_bad_tracklet_config_names_the_key(kw, match):
  kw = {'num_frames': 32, **kw}
  with pytest.raises(ValueError, match=match):
    sampling.check_tracklets(
        kw['num_frames'], kw.get('tracklet_lengths', (8, 16, 32)),
        kw.get('tracklet_probs', (0.2, 0.3, 0.5)))
  with pytest.raises(ValueError, match=match):  # Via sample_frames too.
    sampling.sample_frames(np.random.default_rng(0), 40, 'tracklet', **kw)


class _FakeSource:

  def __init__(self, num_subjects=4, per_subject=3):
    self.sequences = [blob_sequence(s, t, t % 2, 3 + (7 * s + 5 * t) % 40)
                      for s in range(num_subjects) for t in range(per_subject)]
    self.subject_indices = [list(range(s * per_subject, (s + 1) * per_subject))
                            for s in range(num_subjects)]

  def frames_many(self, indices):
    return [self.sequences[i] for i in indices]


def test_loader_from_config_uses_the_tracklet_sampler():
  source = _FakeSource()
  sampler = sampling.PKSampler(source.subject_indices, 4, 2, seed=5)
  c = config_lib.base_config()
  c.lock()
  c.data.frame_sampler = 'tracklet'
  with pytest.raises(ValueError, match=r'data\.num_frames=30'):
    pipeline.TrainBatchLoader.from_config(c.data, source, sampler)
  c.data.num_frames = 32
  loader = pipeline.TrainBatchLoader.from_config(c.data, source, sampler)
  got = loader(3)
  assert got['sils'].shape == (8, 32, 64, 44) and got['mask'].all()
  batch = sampler(3)
  for row, record in enumerate(batch.indices):
    frames = source.sequences[record]
    want = _ref_tracklet(sampling.frame_rng(5, 3, row), len(frames))
    np.testing.assert_array_equal(got['sils'][row],
                                  transforms.cut_width(frames[want]))


# --- Hardness-Exclusion triplet.


def _torch_hardex(emb, labels, margin=0.2, frac=2 / 3):
  """The spec in PyTorch (float64): value and gradient w.r.t. emb."""
  x = torch.tensor(emb, dtype=torch.float64, requires_grad=True)
  e = x.permute(1, 0, 2)  # [p, n, c]
  n = e.shape[1]
  eye = torch.eye(n, dtype=torch.bool)
  sq = ((e * e).sum(-1)[:, :, None] + (e * e).sum(-1)[:, None, :]
        - 2 * e @ e.transpose(1, 2)).clamp(min=0)
  d = torch.where(eye, torch.zeros_like(sq),
                  torch.where(eye, torch.ones_like(sq), sq).sqrt())
  y = torch.tensor(labels)
  match = y[:, None] == y[None, :]  # Self pairs included.
  per_part = []
  for dp in d:
    pos = dp[match]
    mu, top = pos.mean(), pos.max()
    thr = mu + frac * (top - mu)
    keep = (match & (dp < thr).detach())[:, :, None] & ~match[:, None, :]
    t = torch.relu(dp[:, :, None] - dp[:, None, :] + margin) * keep
    num = (t > 0).sum()
    per_part.append(t.sum() / (num + 1e-9) if num > 0 else t.sum() * 0)
  loss = torch.stack(per_part).mean()
  loss.backward()
  return loss.item(), x.grad.numpy()


def _batch(p=4, k=4, parts=3, channels=8, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.repeat(rng.permutation(50)[:p], k))
  emb = rng.normal(size=(p * k, parts, channels)).astype(np.float32)
  return emb, labels.astype(np.int32)


def _jax_hardex(emb, labels, k, **kw):
  fn = lambda e: losses.triplet_loss(e, labels, hard_exclusion=True,
                                     samples_per_class=k, **kw)
  (value, aux), grad = jax.jit(jax.value_and_grad(fn, has_aux=True))(emb)
  return float(value), aux, np.asarray(grad)


@pytest.mark.parametrize('k,frac,seed', [(4, 2 / 3, 0), (4, 0.3, 1),
                                         (None, 2 / 3, 2)])
def test_hardex_matches_torch(k, frac, seed):
  emb, labels = _batch(seed=seed)
  if k is None:
    labels[:5] = labels[0]  # Unequal class sizes: the masked path.
  value, aux, grad = _jax_hardex(emb, labels, k, hard_exclusion_frac=frac)
  ref_value, ref_grad = _torch_hardex(emb, labels, frac=frac)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-4,
                             atol=1e-6 * np.abs(ref_grad).max())
  plain, _ = losses.triplet_loss(emb, labels, samples_per_class=k)
  assert abs(float(plain) - value) > 1e-4  # The exclusion changed the loss.
  assert aux['hardex_threshold'].shape == (3,)


def test_hardest_positive_pair_is_always_excluded():
  # Class A at 0, 0.01 and 10; class B at 5, 5.01 (one part, 2-D points).
  # Only triplets with the far A point as positive are active.
  pts = np.array([0.0, 0.01, 10.0, 5.0, 5.01, 5.02], np.float32)
  emb = np.stack([pts, np.zeros_like(pts)], -1)[:, None, :]  # [6, 1, 2]
  labels = np.array([0, 0, 0, 1, 1, 1], np.int32)
  for k in (3, None):
    plain, _ = losses.triplet_loss(emb, labels, samples_per_class=k)
    assert float(plain) > 1.0
    hardex, aux = losses.triplet_loss(emb, labels, samples_per_class=k,
                                      hard_exclusion=True)
    assert float(hardex) == 0.0 and int(aux['nonzero'][0]) == 0
    # f = 1: the threshold is M itself; only the d = 10 pairs go, the six
    # triplets of the d = 9.99 pairs stay: mean 5.195.
    hardex, aux = losses.triplet_loss(emb, labels, samples_per_class=k,
                                      hard_exclusion=True,
                                      hard_exclusion_frac=1.0)
    np.testing.assert_allclose(float(hardex), 5.195, rtol=1e-5)
    assert int(aux['nonzero'][0]) == 6
    np.testing.assert_allclose(aux['hardex_threshold'], [10.0], rtol=1e-6)
  # Random data: the threshold never exceeds the largest positive distance.
  emb, labels = _batch(seed=3)
  _, aux = losses.triplet_loss(emb, labels, samples_per_class=4,
                               hard_exclusion=True, hard_exclusion_frac=1.0)
  e = np.transpose(emb, (1, 0, 2)).astype(np.float64)
  d = np.linalg.norm(e[:, :, None] - e[:, None, :], axis=-1)
  top = d[:, labels[:, None] == labels[None, :]].max(axis=1)
  np.testing.assert_allclose(aux['hardex_threshold'], top, rtol=1e-5)


def test_equal_positive_distances_mask_every_triplet():
  # Every class is K copies of one point: all d_ap = 0 = mean = max.
  # Coordinates in 1/16 steps keep the expanded distance formula exact (no
  # rounding noise between copies); classes 1/16 apart, inside the margin.
  centres = np.zeros((4, 2, 8), np.float32)
  centres[:, :, 0] = np.arange(4)[:, None] / 16
  labels = np.repeat(np.arange(4), 4).astype(np.int32)
  emb = centres[labels]
  for k in (4, None):
    plain, _ = losses.triplet_loss(emb, labels, samples_per_class=k)
    assert float(plain) > 0.05
    hardex, aux = losses.triplet_loss(emb, labels, samples_per_class=k,
                                      hard_exclusion=True)
    assert float(hardex) == 0.0
    assert not np.asarray(aux['nonzero']).any()


def test_hardex_sharded_equals_single_device():
  mesh = jax.make_mesh((4,), ('data',))
  emb, labels = _batch(seed=5)
  for k in (4, None):
    fn = lambda e, y, a, k=k: losses.triplet_loss(
        e, y, samples_per_class=k, hard_exclusion=True, axis_name=a)
    single = jax.jit(jax.value_and_grad(lambda e, y: fn(e, y, None),
                                        has_aux=True))
    sharded = jax.jit(jax.value_and_grad(jax.shard_map(
        lambda e, y: fn(e, y, 'data'), mesh=mesh,
        in_specs=(P('data'), P('data')), out_specs=P()), has_aux=True))
    put = [jax.device_put(a, NamedSharding(mesh, P('data')))
           for a in (emb, labels)]
    with jax.set_mesh(mesh):
      (value, aux), grad = sharded(*put)
    (ref_value, ref_aux), ref_grad = single(emb, labels)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for key in ref_aux:
      np.testing.assert_allclose(aux[key], ref_aux[key], rtol=1e-5,
                                 err_msg=key)
    ref_grad = np.asarray(ref_grad)
    assert np.abs(ref_grad).max() > 0
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5,
                               atol=1e-6 * np.abs(ref_grad).max())


def test_hardex_config_option():
  cfg = losses.get_loss_config('triplet')
  assert cfg.triplet.hard_exclusion is False
  assert cfg.triplet.hard_exclusion_frac == pytest.approx(2 / 3)
  cfg = losses.get_loss_config('triplet', triplet=dict(hard_exclusion=True))
  emb, labels = _batch(seed=6)
  total, metrics = losses.compute_loss({'embeddings': emb}, labels, cfg,
                                       samples_per_class=4)
  want, _ = losses.triplet_loss(emb, labels, samples_per_class=4,
                                hard_exclusion=True)
  np.testing.assert_allclose(total, want, rtol=1e-6)
  np.testing.assert_allclose(metrics['loss/triplet'], want, rtol=1e-6)
  with pytest.raises(ValueError, match=r'triplet\.hard_exclusion_frac'):
    losses.get_loss_config('triplet', triplet=dict(hard_exclusion_frac=1.5))
  with pytest.raises(ValueError, match=r'triplet\.hard_exclusion'):
    losses.get_loss_config('triplet', triplet=dict(hard_exclusion=1))
  cfg.triplet.hard_exclusion_frac = -0.1
  with pytest.raises(ValueError, match=r'triplet\.hard_exclusion_frac'):
    losses.validate_loss_config(cfg)
  with pytest.raises(ValueError, match='hard_exclusion_frac'):
    losses.triplet_loss(emb, labels, hard_exclusion_frac=2.0)
