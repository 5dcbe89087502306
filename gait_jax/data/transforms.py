"""Silhouette transforms: host-side cutting, device-side scaling.

OpenGait's ``BaseSilCuttingTransform`` cuts ``W // 64 * 10`` columns from each
side of a 64-wide frame (64×64 → 64×44) and divides by 255. Here the cut runs on
the host on uint8 data (4× less to transfer) and the division on the device.
Models that OpenGait trains on uncut frames (``BaseSilTransform``: SwinGait,
RG-Gait's configs) set ``config.data.cut_width = False``; their frames stay
64×64.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Frames are 64x64 silhouettes cut to width 44 by `cut_width`.
FRAME_HEIGHT = 64
FRAME_WIDTH = 44
FRAME_SHAPE = (FRAME_HEIGHT, FRAME_WIDTH)


def frame_shape(cut: bool = True) -> tuple[int, int]:
  """(H, W) of the model's input frames: 64×44 cut, 64×64 uncut."""
  return FRAME_SHAPE if cut else (FRAME_HEIGHT, FRAME_HEIGHT)


def check_cut(value) -> bool:
  """``config.data.cut_width``, validated."""
  if not isinstance(value, bool):
    raise ValueError(f'data.cut_width={value!r}: must be True (cut 64×64 '
                     'frames to 64×44, as BaseSilCuttingTransform) or False '
                     '(keep them whole, as BaseSilTransform).')
  return value


def model_frames(frames: np.ndarray, cut: bool = True) -> np.ndarray:
  """The stored frames as the model sees them: `cut_width` or unchanged."""
  return cut_width(frames) if cut else frames


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
