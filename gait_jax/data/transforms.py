"""Silhouette transforms: host-side cutting, device-side scaling.

OpenGait's ``BaseSilCuttingTransform`` cuts ``W // 64 * 10`` columns from each
side of a 64-wide frame (64×64 → 64×44) and divides by 255. Here the cut runs on
the host on uint8 data (4× less to transfer) and the division on the device.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Frames are 64x64 silhouettes cut to width 44 by `cut_width`.
FRAME_HEIGHT = 64
FRAME_WIDTH = 44
FRAME_SHAPE = (FRAME_HEIGHT, FRAME_WIDTH)


def cut_width(frames: np.ndarray) -> np.ndarray:
  """Cuts ``W // 64 * 10`` columns from both sides: [..., H, W] → [..., H, W-2c].

  Args:
    frames: uint8 [..., H, W] silhouettes.

  Returns:
    The cut array (a view, no copy).
  """
  width = frames.shape[-1]
  cut = int(width // 64) * 10
  if cut == 0:
    return frames
  return frames[..., cut:width - cut]


def to_unit_range(sils: jnp.ndarray, dtype=jnp.float32) -> jnp.ndarray:
  """uint8 silhouettes → floats in [0, 1] (OpenGait's ``/ 255.0``)."""
  return sils.astype(dtype) / jnp.asarray(255.0, dtype)
