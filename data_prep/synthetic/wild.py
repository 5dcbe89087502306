"""Walking silhouettes "in the wild": the Gait3D-style synthetic renderer.

`render_wild_sequence` poses the articulated body of `body.py` and views it
from a random camera, like a person walking past a surveillance camera:

1. gait: the identity's body and gait, with cadence, stride and arm swing
   varying slightly per sequence; clothes and carried objects drawn from
   the identity's own wardrobe (`sample_wardrobe`, `draw_condition`);
2. camera: azimuth anywhere in 0-360 degrees, elevation 0-30 degrees, a
   distance that sets the person's height in pixels (far = coarse) and a
   mild perspective; the path may turn, so the view changes within the
   sequence;
3. camera-space silhouettes of the tracked person (`raster.rasterise_window`)
   with the nuisances of `wild_nuisance.py`: static occluders, the frame
   border, segmentation noise and dropped frames;
4. OpenGait's pretreatment: frames with almost no foreground are dropped,
   the others cropped to their foreground rows, resized to 64 rows and
   centred on the column of half mass, as uint8 [T', 64, 64] in {0, 255}.

Each stage draws from its own generator (seeded from `key` and the stage),
so a knob changes only its own nuisance and every knob at 0 gives the clean
render of the same person, walk and camera.

  person = render.sample_identity(np.random.default_rng(0))
  wardrobe = sample_wardrobe(np.random.default_rng(1))
  seq = render_wild_sequence(person, wardrobe, 40, (0, 7), WildConfig())
  seq.frames  # uint8 [T', 64, 64], T' <= 40
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_prep.synthetic import body
from data_prep.synthetic import raster
from data_prep.synthetic import wild_nuisance

_STREAMS = {'gait': 0, 'outfit': 1, 'camera': 2, 'view': 3, 'occlusion': 4,
            'border': 5, 'seg_noise': 6}
MARGIN = 2  # camera-space rows above and below the body
MIN_AREA = 0.015  # frames with less foreground (x body_rows^2) are dropped


@dataclasses.dataclass(frozen=True)
class WildConfig:
  """Strengths of the wild nuisances; each 0 = off, 1 = the default level.

  Attributes:
    occlusion: static occluders; chance per sequence 0.35 * occlusion.
    border: person partly out of frame; chance per sequence 0.25 * border.
    seg_noise: holes, blobs, boundary erosion/dilation, dropped frames
      (rates in `wild_nuisance.segmentation_noise`).
    view_change: the path turns by 30-90 degrees with chance
      0.5 * view_change, plus a drift of up to +-15 * view_change degrees.
    elevation: camera elevation uniform in [0, 30 * elevation] degrees.
    azimuth: azimuth uniform in 90 +- 180 * min(azimuth, 1) degrees.
    distance: body height in camera pixels 64 / (1 + distance * U(0, 1))
      (far people are coarse after resizing to 64 rows).
    perspective: 0 = orthographic; 1 = a pinhole camera 4-8 m away.
    gait_jitter: per-sequence spread of cadence (+-8 %), stride (+-10 %) and
      arm swing (+-15 %), times this.
    clothing: multiplies the identity's chance of wearing a coat.
    carrying: multiplies the identity's chance of carrying a bag.
    frame_size: output frame height and width.
  """
  occlusion: float = 1.0
  border: float = 1.0
  seg_noise: float = 1.0
  view_change: float = 1.0
  elevation: float = 1.0
  azimuth: float = 1.0
  distance: float = 1.0
  perspective: float = 1.0
  gait_jitter: float = 1.0
  clothing: float = 1.0
  carrying: float = 1.0
  frame_size: int = 64

  def __post_init__(self):
    for f in dataclasses.fields(self):
      if f.name != 'frame_size' and getattr(self, f.name) < 0:
        raise ValueError(f'{f.name}={getattr(self, f.name)} must be >= 0')

  @classmethod
  def clean(cls, **overrides: float) -> 'WildConfig':
    """Every knob at 0 (a side view, no nuisance) except `overrides`."""
    zero = {f.name: 0.0 for f in dataclasses.fields(cls)
            if f.name != 'frame_size'}
    return cls(**{**zero, **overrides})


@dataclasses.dataclass
class WildSequence:
  """One rendered sequence and what the nuisances did to it.

  Attributes:
    frames: uint8 [T', size, size] normalised silhouettes (kept frames).
    kept: int [T'] index of each output frame among the rendered ones.
    canvas: bool [T, R, C] camera-space silhouettes after the nuisances.
    occluder: bool [T, R, C] pixels hidden by the occluder.
    outside: bool [T, R, C] pixels outside the camera frame.
    dropped: bool [T] frames dropped by the segmentation noise.
    azimuth: float [T] camera azimuth relative to the walking direction.
    info: scalars of the draw (condition, elevation, body_rows, ...).
  """
  frames: np.ndarray
  kept: np.ndarray
  canvas: np.ndarray
  occluder: np.ndarray
  outside: np.ndarray
  dropped: np.ndarray
  azimuth: np.ndarray
  info: dict[str, Any]


def sample_wardrobe(rng: np.random.Generator) -> dict[str, Any]:
  """Draws an identity's clothing and carrying habits.

  Returns:
    coat_rate and bag_rate (chances per sequence), two coat styles, bag kind
    preferences over `body.BAG_KINDS`, a bag size per kind, the usual side.
  """
  return {
      'coat_rate': float(rng.uniform(0.0, 0.6)),
      'coats': [dict(looseness=float(rng.uniform(1.1, 1.45)),
                     hem=float(rng.uniform(0.3, 1.2)),
                     flare=float(rng.uniform(1.05, 1.5)),
                     sleeve=float(rng.uniform(1.1, 1.45))) for _ in range(2)],
      'bag_rate': float(rng.uniform(0.0, 0.7)),
      'bag_pref': rng.dirichlet(np.ones(len(body.BAG_KINDS))).tolist(),
      'bag_size': rng.uniform(0.8, 1.25, len(body.BAG_KINDS)).tolist(),
      'side': int(rng.choice([-1, 1])),
  }


def draw_condition(wardrobe: dict[str, Any], rng: np.random.Generator,
                   clothing: float = 1.0,
                   carrying: float = 1.0) -> body.Condition:
  """Draws one sequence's clothes and bag from an identity's wardrobe."""
  u_coat, style = rng.uniform(), int(rng.integers(2))
  u_bag = rng.uniform()
  kind = int(rng.choice(len(body.BAG_KINDS), p=wardrobe['bag_pref']))
  same_side = rng.uniform() < 0.8
  coat = u_coat < min(1.0, wardrobe['coat_rate'] * clothing)
  bag = u_bag < min(1.0, wardrobe['bag_rate'] * carrying)
  return body.Condition(
      kind={(False, False): 'nm', (False, True): 'bg', (True, False): 'cl',
            (True, True): 'cb'}[coat, bag],
      bag=body.BAG_KINDS[kind], bag_size=wardrobe['bag_size'][kind],
      side=wardrobe['side'] * (1 if same_side else -1),
      **wardrobe['coats'][style])


def project_perspective(arrays: dict[str, np.ndarray], axes: np.ndarray,
                        pivot: np.ndarray,
                        distance: float) -> dict[str, np.ndarray]:
  """Weak-per-primitive perspective: `raster.project` scaled by depth.

  Every cone end and ellipsoid centre is scaled by D / (D - depth), its
  depth towards the camera relative to `pivot`; radii and ellipse shapes
  scale with their point, so the primitives keep their 2-D shape class.

  Args:
    arrays: `body.pose_scene` output.
    axes: [T, 2, 3] camera axes (`raster.camera_axes`).
    pivot: [3] world point at the camera's aim.
    distance: camera distance D (world units; > the body's depth).

  Returns:
    Projected primitives as `raster.project` gives them.
  """
  to_cam = np.cross(axes[:, 0], axes[:, 1])  # [T, 3]

  def proj(x):  # [T, K, 3] -> [T, K, 2], [T, K]
    rel = x - pivot
    scale = distance / (distance - np.einsum('tkj,tj->tk', rel, to_cam))
    return np.einsum('tij,tkj->tki', axes, rel) * scale[..., None], scale

  a, sa = proj(arrays['cone_a'])
  b, sb = proj(arrays['cone_b'])
  c, sc = proj(arrays['ell_c'])
  cov = np.einsum('tij,tejk,tlk->teil', axes, arrays['ell_cov'], axes)
  return {'cone_a': a, 'cone_b': b, 'cone_ra': arrays['cone_ra'] * sa,
          'cone_rb': arrays['cone_rb'] * sb, 'ell_c': c,
          'ell_cov': cov * np.square(sc)[..., None, None]}


def _resample(x: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
  """Linear interpolation of x [T, A, B] at coords [T, N] along axis 1 or 2.

  Samples outside the array read zeros.
  """
  n = x.shape[axis]
  lo = np.floor(coords)
  w = (coords - lo).astype(np.float32)
  lo = lo.astype(np.int64)
  padded = np.pad(x, [(0, 0)] + [(1, 1) if a == axis else (0, 0)
                                 for a in (1, 2)])
  out = 0
  for idx, weight in ((lo, 1 - w), (lo + 1, w)):
    idx = np.clip(idx + 1, 0, n + 1)  # in the padded array
    shape = (idx.shape[0], -1, 1) if axis == 1 else (idx.shape[0], 1, -1)
    out = out + weight.reshape(shape) * np.take_along_axis(
        padded, idx.reshape(shape), axis)
  return out


def normalise(masks: np.ndarray, size: int = 64) -> np.ndarray:
  """OpenGait's pretreatment of bool [T, R, C] (each frame non-empty).

  Crops each frame to its foreground rows, resizes it (bilinear, keeping the
  aspect ratio, threshold 1/2) to `size` rows around the canvas centre and
  centres it on the column of half mass (`raster._centre_columns`).

  Returns:
    uint8 [T, size, size] in {0, 255}.
  """
  t, r, c = masks.shape
  rows_on = masks.any(2)  # [T, R]
  r0 = np.argmax(rows_on, 1)
  r1 = r - 1 - np.argmax(rows_on[:, ::-1], 1)
  step = (r1 - r0 + 1)[:, None] / size  # [T, 1] source rows per output row
  i = np.arange(size)[None, :] + 0.5
  ys = r0[:, None] + i * step - 0.5  # [T, size]
  xs = c / 2 + (np.arange(2 * size)[None, :] + 0.5 - size) * step - 0.5
  img = _resample(masks.astype(np.float32), ys, 1)  # [T, size, C]
  img = _resample(img, xs, 2)  # [T, size, 2 * size]
  return raster._centre_columns(img >= 0.5, size)  # pylint: disable=protected-access


def _walk(p: dict[str, float], num_frames: int, rng: np.random.Generator,
          jitter: float) -> tuple[dict[str, float], np.ndarray]:
  """Per-sequence gait variation and the gait phase of every frame."""
  u = rng.uniform(-1, 1, 3)
  start = rng.uniform(0, 2 * np.pi)
  p = dict(p)
  p['stride'] *= 1 + 0.10 * jitter * u[1]
  p['arm_swing'] *= 1 + 0.15 * jitter * u[2]
  cadence = p['cadence'] * (1 + 0.08 * jitter * u[0])
  return p, start + 2 * np.pi * np.arange(num_frames) / cadence


def _azimuth(num_frames: int, rng: np.random.Generator,
             config: WildConfig) -> np.ndarray:
  """[T] camera azimuth: a random start, a drift and maybe a turn."""
  az0 = rng.uniform(-180, 180)
  drift, u_turn = rng.uniform(-1, 1), rng.uniform()
  turn = rng.uniform(30, 90) * rng.choice([-1.0, 1.0])
  centre, duration = rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4)
  s = np.arange(num_frames) / max(num_frames - 1, 1)  # [T] in [0, 1]
  k = config.view_change
  az = 90.0 + az0 * min(config.azimuth, 1.0) + 15.0 * k * drift * (s - 0.5)
  if u_turn < min(1.0, 0.5 * k):
    x = np.clip((s - centre) / duration + 0.5, 0.0, 1.0)
    az = az + turn * x * x * (3 - 2 * x)  # smoothstep
  return az


def render_wild_sequence(identity: dict[str, float],
                         wardrobe: dict[str, Any], num_frames: int,
                         key: tuple[int, ...],
                         config: WildConfig = WildConfig()) -> WildSequence:
  """Renders one wild sequence (a pure function of its arguments).

  Args:
    identity: body and gait parameters (`render.sample_identity`).
    wardrobe: the identity's habits (`sample_wardrobe`).
    num_frames: rendered frames T (>= 1); dropped frames make the output
      shorter.
    key: ints seeding this sequence's generators.
    config: nuisance strengths.

  Returns:
    The frames and the record of the nuisances (`WildSequence`).
  """
  if num_frames < 1:
    raise ValueError(f'num_frames must be >= 1, got {num_frames}')
  rng = lambda name: np.random.default_rng([*key, _STREAMS[name]])
  p, phase = _walk(identity, num_frames, rng('gait'), config.gait_jitter)
  cond = draw_condition(wardrobe, rng('outfit'), config.clothing,
                        config.carrying)
  cam = rng('camera')
  elevation = cam.uniform(0, 30) * config.elevation
  far = cam.uniform() * config.distance
  body_rows = int(round(config.frame_size / (1 + far)))
  azimuth = _azimuth(num_frames, rng('view'), config)

  scene = body.pose_scene(p, cond, phase)
  axes = raster.camera_axes(azimuth, min(elevation, 80.0))
  if config.perspective > 0:
    dist = 4.0 * (1 + far) / config.perspective  # metres
    prims = project_perspective(scene, axes,
                                np.array([0, 0, 0.5 * p['height']]), dist)
  else:
    prims = raster.project(scene, axes)
  top, bottom, left, right = raster.extents(prims)
  pix = float(top.max() - bottom.min()) / body_rows
  rows = body_rows + 2 * MARGIN
  cols = 2 * int(round(0.75 * rows))
  clean = raster.rasterise_window(
      prims, np.full(num_frames, top.max() + MARGIN * pix),
      0.5 * (left + right) - 0.5 * cols * pix, pix, rows, cols)

  shape = clean.shape
  occluder = wild_nuisance.occluder_mask(shape, rng('occlusion'),
                                         config.occlusion, body_rows, MARGIN)
  masks = clean & ~occluder
  masks, dropped = wild_nuisance.segmentation_noise(
      masks, rng('seg_noise'), config.seg_noise, body_rows)
  outside = wild_nuisance.border_mask(clean, rng('border'), config.border,
                                      body_rows)
  masks = masks & ~outside

  area = masks.sum((1, 2))
  keep = ~dropped & (area >= max(1.0, MIN_AREA * body_rows ** 2))
  if not keep.any():  # Keep the best frame rather than an empty sequence.
    keep[int(np.argmax(area))] = area.max() > 0
  if not keep.any():
    masks, keep = clean, np.eye(1, num_frames, dtype=bool)[0]
  kept = np.flatnonzero(keep)
  frames = normalise(masks[kept], config.frame_size)
  info = dict(condition=cond.kind, bag=cond.bag, elevation=elevation,
              body_rows=body_rows, rendered_frames=num_frames)
  return WildSequence(frames=frames, kept=kept, canvas=masks,
                      occluder=occluder, outside=outside, dropped=dropped,
                      azimuth=azimuth, info=info)
