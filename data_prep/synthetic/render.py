"""Procedural walking silhouettes: the public rendering API.

`render_sequence` poses an articulated 3-D body (`body.py`) over a stretch of
its gait cycle, views it from an azimuth (CASIA-B views: 0 = walking towards
the camera, 90 = side view, 180 = walking away) and rasterises binary 64x64
frames normalised like OpenGait's pretreatment (`raster.py`).

  rng = np.random.default_rng(0)
  person = sample_identity(rng)
  frames = render_sequence(person, 'cl', 90.0, 30, rng)  # uint8 [30, 64, 64]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_prep.synthetic import raster
from data_prep.synthetic.body import BAG_KINDS
from data_prep.synthetic.body import CONDITIONS
from data_prep.synthetic.body import Condition
from data_prep.synthetic.body import IDENTITY_DISTRIBUTION
from data_prep.synthetic.body import IdentityParams
from data_prep.synthetic.body import mean_identity
from data_prep.synthetic.body import pose_scene
from data_prep.synthetic.body import sample_condition
from data_prep.synthetic.body import sample_identity

__all__ = [
    'BAG_KINDS', 'CONDITIONS', 'Condition', 'IDENTITY_DISTRIBUTION',
    'IdentityParams', 'Nuisance', 'mean_identity', 'render_sequence',
    'sample_condition', 'sample_identity',
]


@dataclasses.dataclass(frozen=True)
class Nuisance:
  """Per-sequence variation that is neither identity nor condition.

  Attributes:
    speed_jitter: relative spread of the cadence (uniform +-).
    view_jitter_deg: spread of the walking direction around the view.
    elevation_deg: mean camera elevation.
    elevation_jitter_deg: spread of the camera elevation.
    aspect_jitter: relative spread of the horizontal pixel scale.
  """
  speed_jitter: float = 0.06
  view_jitter_deg: float = 3.0
  elevation_deg: float = 6.0
  elevation_jitter_deg: float = 2.0
  aspect_jitter: float = 0.03


def render_sequence(
    identity_params: IdentityParams,
    condition: str | Condition,
    view_deg: float,
    num_frames: int,
    rng: np.random.Generator,
    *,
    size: int = 64,
    supersample: int = 1,
    nuisance: Nuisance = Nuisance(),
) -> np.ndarray:
  """Renders one walking sequence as binary silhouettes.

  Args:
    identity_params: body and gait parameters (`sample_identity`).
    condition: 'nm', 'bg' or 'cl' (a CASIA-B type such as 'bg-01' works too;
      its bag or coat is then drawn from `rng`), or a `Condition`.
    view_deg: camera azimuth in degrees.
    num_frames: number of frames T (>= 1).
    rng: random generator for the start phase and the nuisance.
    size: frame height and width.
    supersample: render at this factor and downsample (smoother outlines).
    nuisance: spreads of the per-sequence nuisance.

  Returns:
    uint8 [T, size, size] frames with values 0 and 255.
  """
  if num_frames < 1:
    raise ValueError(f'num_frames must be >= 1, got {num_frames}')
  if isinstance(condition, str):
    condition = sample_condition(condition[:2], rng)
  p = identity_params
  cadence = p['cadence'] * (1 + rng.uniform(-1, 1) * nuisance.speed_jitter)
  start = rng.uniform(0, 2 * np.pi)
  phase = start + 2 * np.pi * np.arange(num_frames) / cadence  # [T]
  view = view_deg + rng.uniform(-1, 1) * nuisance.view_jitter_deg
  elevation = (nuisance.elevation_deg
               + rng.uniform(-1, 1) * nuisance.elevation_jitter_deg)
  aspect = 1 + rng.uniform(-1, 1) * nuisance.aspect_jitter

  scene = pose_scene(p, condition, phase)
  axes = raster.camera_axes(np.full(num_frames, view), elevation)
  prims = raster.project(scene, axes)
  return raster.rasterise(prims, size=size, supersample=supersample,
                          aspect=aspect)
