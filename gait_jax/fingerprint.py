"""Content fingerprints of a state pytree, to tell a damaged checkpoint.

A checkpoint's files can be damaged in ways its format does not notice (a
zeroed stretch inside a compressed chunk may still decompress). The
checkpointer stores the fingerprint of the state it saves in the step's meta
and compares it with the fingerprint of what it restores.

The fingerprint of an array is the sum, modulo 2**32, of its elements' bit
patterns read as unsigned integers. Integer addition modulo 2**32 is exact
and order-independent, so the value does not depend on how XLA splits the
reduction, on the platform or on the sharding; it is computed on the devices
and only one integer per array comes to the host.

  prints = fingerprint(state)   # {'params/conv/kernel': ['float32', 123], ...}
  differing = compare(prints, fingerprint(restored))

An array restored in another dtype than it was saved in (orbax casts to the
target's dtype) has other bit patterns; its fingerprint is not compared.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


def _leaf_sum(x: jax.Array) -> jax.Array:
  """uint32 sum of the bit patterns of ``x``'s elements."""
  x = jnp.asarray(x)
  if x.dtype == jnp.bool_:
    bits = x.astype(jnp.uint32)
  elif x.dtype.itemsize in _UINT:
    bits = jax.lax.bitcast_convert_type(x, _UINT[x.dtype.itemsize])
    bits = bits.astype(jnp.uint32)
  elif x.dtype.itemsize == 8:  # Two 32-bit words per element.
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  else:
    raise TypeError(f'No fingerprint for dtype {x.dtype}.')
  return jnp.sum(bits, dtype=jnp.uint32)


_sums = jax.jit(lambda leaves: [_leaf_sum(x) for x in leaves])


def _path_name(path: tuple[Any, ...]) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(
      k, 'idx', k)))) for k in path)


def fingerprint(tree: Any) -> dict[str, list[Any]]:
  """Per-array ``[dtype name, fingerprint]`` of ``tree``, keyed by path.

  Every process of a multi-host run must call it (the sums are global
  reductions of possibly sharded arrays); each gets the same values.
  """
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  if not flat:
    return {}
  sums = jax.device_get(_sums([leaf for _, leaf in flat]))
  return {_path_name(path): [str(jnp.asarray(leaf).dtype), int(np.asarray(s))]
          for (path, leaf), s in zip(flat, sums)}


def compare(saved: Mapping[str, Any], restored: Mapping[str, Any]
            ) -> list[str]:
  """The paths whose fingerprints differ, are missing or are new, sorted
  (arrays restored in another dtype are not compared)."""
  out = []
  for key in sorted(set(saved) | set(restored)):
    a, b = saved.get(key), restored.get(key)
    if a is None or b is None:
      out.append(key)
    elif a[0] == b[0] and int(a[1]) != int(b[1]):
      out.append(key)
  return out
