"""Content fingerprints: exact, sharding-independent, sensitive to one bit."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gait_jax import fingerprint as fp


def _numpy_sum(x: np.ndarray) -> int:
  """The reference: bit patterns as unsigned integers, summed mod 2**32."""
  x = np.ascontiguousarray(x)
  if x.dtype == np.bool_:
    words = x.astype(np.uint64)
  else:
    words = x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.itemsize])
  return int(words.astype(np.uint64).sum() % (1 << 32))


def _tree():
  rng = np.random.default_rng(0)
  return {'params': {'w': rng.normal(size=(8, 6)).astype(np.float32),
                     'h': rng.normal(size=(5,)).astype(jnp.bfloat16)},
          'step': np.int32(7), 'flag': np.array([True, False, True])}


def test_matches_a_numpy_reference():
  tree = _tree()
  got = fp.fingerprint(tree)
  assert got['params/w'] == ['float32', _numpy_sum(tree['params']['w'])]
  assert got['params/h'] == ['bfloat16', _numpy_sum(tree['params']['h'])]
  assert got['step'] == ['int32', 7]
  assert got['flag'] == ['bool', 2]


def test_sharded_equals_host():
  tree = _tree()
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ('data',))
  sharded = dict(tree, params=dict(tree['params'], w=jax.device_put(
      tree['params']['w'], NamedSharding(mesh, P('data')))))
  assert fp.fingerprint(sharded) == fp.fingerprint(tree)


def test_one_flipped_bit_is_found_and_casts_are_not_compared():
  tree = _tree()
  saved = fp.fingerprint(tree)
  bits = tree['params']['w'].view(np.uint32).copy()
  bits[3, 2] ^= 1 << 5
  damaged = dict(tree, params=dict(tree['params'], w=bits.view(np.float32)))
  assert fp.compare(saved, fp.fingerprint(damaged)) == ['params/w']
  cast = dict(tree, step=np.float32(7))  # Restored into another dtype.
  assert fp.compare(saved, fp.fingerprint(cast)) == []
  missing = {k: v for k, v in tree.items() if k != 'flag'}
  assert fp.compare(saved, fp.fingerprint(missing)) == ['flag']
