"""Frame-axis helpers of the models: masks, masked max, per-frame mapping.

Sequences are `[n, s, ...]` with an optional bool frame mask `[n, s]` (True =
real frame); padded frames never change a real frame's result.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def expand_mask(mask: Array, ndim: int) -> Array:
  """Reshapes a `[n, s]` (or `[n]`) mask to broadcast against `ndim` dims."""
  return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def zero_padding(x: Array, mask: Optional[Array]) -> Array:
  """Sets padded frames (axis 1) to zero; identity when `mask` is None."""
  if mask is None:
    return x
  return jnp.where(expand_mask(mask, x.ndim), x, jnp.zeros((), x.dtype))


def masked_max(x: Array, mask: Optional[Array]) -> Array:
  """Max over the frame axis 1, ignoring padded frames.

  Args:
    x: `[n, s, ...]`.
    mask: bool `[n, s]` or None (all frames real).

  Returns:
    `[n, ...]`; zeros for a sequence without real frames.
  """
  # The gradient goes to the first maximum, as with PyTorch's
  # `torch.max(x, dim)`. The index is taken from the forward values, so the
  # backward pass does not depend on recomputed features comparing equal to
  # the forward maximum (with `jnp.max` they need not, and gradient is lost).
  if mask is None:
    picked = x
  else:
    neg = jnp.array(-jnp.inf, x.dtype)
    picked = jnp.where(expand_mask(mask, x.ndim), x, neg)
  idx = jnp.argmax(jax.lax.stop_gradient(picked), axis=1)  # [n, ...]
  out = jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0]  # [n, ...]
  if mask is None:
    return out
  # A sequence without any real frame (batch padding) pools to zeros.
  valid = expand_mask(jnp.any(mask, axis=1), out.ndim)
  return jnp.where(valid, out, jnp.zeros((), x.dtype))


def frame_wise(fn: Callable[[Array], Array], x: Array) -> Array:
  """Applies a per-frame function to `[n, s, ...]` by folding s into n."""
  n, s = x.shape[:2]
  y = fn(x.reshape((n * s,) + x.shape[2:]))  # [n * s, ...]
  return y.reshape((n, s) + y.shape[1:])
