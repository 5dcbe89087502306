"""Articulated 3-D body, walking pose and carried conditions.

The body is a union of tapered capsules ("cones": the convex hull of two
spheres) and ellipsoids, posed by forward kinematics from a gait phase.
World frame: x forward (walking direction), y to the body's left, z up;
lengths in metres. Every identity has its own proportions and gait style
(`IdentityParams`); a `Condition` adds a bag or a coat on top.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# name: (population mean, standard deviation). Lengths and radii are fractions
# of body height, angles are degrees, cadence is frames per gait cycle.
IDENTITY_DISTRIBUTION: dict[str, tuple[float, float]] = {
    'height': (1.70, 0.08),  # metres
    'leg': (0.50, 0.015),  # hip-joint height (standing)
    'thigh': (0.53, 0.015),  # thigh share of hip-to-ankle length
    'head': (0.065, 0.004),  # head radius
    'neck': (0.028, 0.005),
    'shoulder': (0.115, 0.008),  # half distance between shoulder joints
    'hip': (0.085, 0.007),  # half distance between hip joints
    'chest_width': (0.095, 0.008),  # half width
    'chest_depth': (0.07, 0.007),  # half depth
    'belly': (0.064, 0.010),  # abdomen half depth
    'upper_arm': (0.170, 0.008),
    'forearm': (0.150, 0.008),
    'foot': (0.145, 0.008),
    'mass': (1.0, 0.08),  # multiplies all widths and radii
    'thigh_r': (0.048, 0.005),
    'shin_r': (0.031, 0.003),
    'arm_r': (0.026, 0.003),
    'stride': (24.0, 3.0),  # hip flexion amplitude
    'hip_offset': (4.0, 2.0),  # mean hip flexion
    'knee': (58.0, 6.0),  # peak knee flexion in swing
    'knee_stance': (15.0, 5.0),  # knee flexion after heel strike
    'arm_swing': (20.0, 6.0),  # shoulder flexion amplitude
    'arm_offset': (2.0, 3.0),  # mean shoulder flexion
    'elbow': (18.0, 7.0),
    'arm_abduct': (7.0, 2.5),
    'cadence': (27.0, 2.5),  # frames per gait cycle at 25 fps
    'lean': (4.0, 3.0),  # trunk pitch forward
    'head_forward': (0.012, 0.008),  # head centre ahead of the neck
    'toe_out': (8.0, 4.0),
    'sway': (0.012, 0.004),  # lateral pelvis sway amplitude
    'pelvis_yaw': (5.0, 2.0),
    'torso_yaw': (4.0, 2.0),
}
IdentityParams = dict[str, float]
CONDITIONS = ('nm', 'bg', 'cl')
BAG_KINDS = ('backpack', 'shoulder', 'hand')


def mean_identity() -> IdentityParams:
  """Returns the population-mean identity."""
  return {k: m for k, (m, _) in IDENTITY_DISTRIBUTION.items()}


def sample_identity(rng: np.random.Generator,
                    spread: float = 1.0) -> IdentityParams:
  """Draws identity parameters around the population mean.

  Args:
    rng: random generator (seed it from the subject for determinism).
    spread: multiplies every standard deviation; 0 gives identical people.

  Returns:
    Dict of parameter name -> value (see IDENTITY_DISTRIBUTION).
  """
  z = np.clip(rng.standard_normal(len(IDENTITY_DISTRIBUTION)), -2.5, 2.5)
  return {k: float(m + spread * s * zi)
          for (k, (m, s)), zi in zip(IDENTITY_DISTRIBUTION.items(), z)}


@dataclasses.dataclass(frozen=True)
class Condition:
  """Walking condition: 'nm', 'bg' (with a bag) or 'cl' (with a coat).

  The kind 'cb' (coat and bag together) is not a CASIA-B condition; the wild
  renderer (`wild.py`) builds it directly.
  """
  kind: str = 'nm'
  bag: str = 'backpack'  # one of BAG_KINDS (bg only)
  bag_size: float = 1.0
  side: int = 1  # +1 left, -1 right: which side a bag hangs on
  looseness: float = 1.3  # coat: torso widening factor
  hem: float = 1.0  # coat: length below the hips, in thigh lengths
  flare: float = 1.3  # coat: widening of the hem
  sleeve: float = 1.3  # coat: sleeve widening

  @property
  def has_coat(self) -> bool:
    return self.kind in ('cl', 'cb')

  @property
  def has_bag(self) -> bool:
    return self.kind in ('bg', 'cb')


def sample_condition(kind: str, rng: np.random.Generator) -> Condition:
  """Draws the bag or coat of a condition ('nm', 'bg' or 'cl')."""
  if kind not in CONDITIONS:
    raise ValueError(f'condition {kind!r} not in {CONDITIONS}')
  return Condition(
      kind=kind,
      bag=BAG_KINDS[int(rng.integers(len(BAG_KINDS)))],
      bag_size=float(rng.uniform(0.85, 1.2)),
      side=int(rng.choice([-1, 1])),
      looseness=float(rng.uniform(1.2, 1.45)),
      hem=float(rng.uniform(0.75, 1.15)),
      flare=float(rng.uniform(1.15, 1.5)),
      sleeve=float(rng.uniform(1.2, 1.45)),
  )


def _vm(x: np.ndarray, kappa: float) -> np.ndarray:
  """Smooth periodic bump of height 1 at x = 0 (von Mises shape)."""
  return np.exp(kappa * (np.cos(x) - 1.0))


def _rot_z(a: np.ndarray) -> np.ndarray:
  """Rotations about z by angles a [T] (radians) -> [T, 3, 3]."""
  c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
  return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1),
                   np.stack([o, o, i], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
  """Rotations about y by angles a [T]: positive pitches +z towards +x."""
  c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
  return np.stack([np.stack([c, o, s], -1), np.stack([o, i, o], -1),
                   np.stack([-s, o, c], -1)], -2)


def _limb(alpha: np.ndarray, roll: float, length: float) -> np.ndarray:
  """Segment vectors [T, 3] hanging down, flexed forward by alpha [T].

  Args:
    alpha: sagittal angle from straight down, positive forward (radians).
    roll: sideways tilt (radians), positive towards +y.
    length: segment length.

  Returns:
    [T, 3] vectors from the proximal to the distal joint.
  """
  down = -np.cos(alpha)
  return length * np.stack(
      [np.sin(alpha), -down * np.sin(roll) * np.ones_like(alpha),
       down * np.cos(roll)], -1)


def _apply(rot: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Rotates vectors v [T, 3] (or [3]) by rot [T, 3, 3]."""
  return np.einsum('tij,tj->ti', rot, np.broadcast_to(v, rot.shape[:-1]))


class Scene:
  """3-D primitives of posed bodies, one row per frame."""

  def __init__(self, num_frames: int):
    self.t = num_frames
    self.cones: list[tuple[np.ndarray, np.ndarray, Any, Any]] = []
    self.ellipsoids: list[tuple[np.ndarray, np.ndarray]] = []

  def cone(self, a, b, ra, rb=None) -> None:
    """Adds a tapered capsule from a [T, 3] (radius ra) to b (radius rb)."""
    self.cones.append((a, b, ra, ra if rb is None else rb))

  def ellipsoid(self, centre, rot, semi_axes) -> None:
    """Adds an ellipsoid: centre [T, 3], rot [T, 3, 3], semi_axes [3]."""
    cov = np.einsum('tij,j,tkj->tik', rot, np.square(semi_axes), rot)
    self.ellipsoids.append((centre, cov))

  def arrays(self) -> dict[str, np.ndarray]:
    """Returns the primitives stacked: cones [T, K, ...], ellipsoids."""
    t = self.t
    radius = lambda r: np.broadcast_to(np.asarray(r, np.float64), (t,))
    return {
        'cone_a': np.stack([c[0] for c in self.cones], 1),  # [T, K, 3]
        'cone_b': np.stack([c[1] for c in self.cones], 1),  # [T, K, 3]
        'cone_ra': np.stack([radius(c[2]) for c in self.cones], 1),  # [T, K]
        'cone_rb': np.stack([radius(c[3]) for c in self.cones], 1),  # [T, K]
        'ell_c': np.stack([e[0] for e in self.ellipsoids], 1),  # [T, E, 3]
        'ell_cov': np.stack([e[1] for e in self.ellipsoids], 1),  # [T,E,3,3]
    }


def pose_scene(p: IdentityParams, cond: Condition,
               phase: np.ndarray) -> dict[str, np.ndarray]:
  """Poses the body at gait phases and returns its primitives.

  Phase 0..2*pi is one gait cycle; the left hip is most flexed (leg forward)
  at pi/2, the right leg runs half a cycle behind, arms swing opposite to the
  leg of the same side. The body is lifted so the lower foot touches z = 0.

  Args:
    p: identity parameters.
    cond: walking condition.
    phase: [T] gait phases (radians).

  Returns:
    `Scene.arrays()` of the posed body.
  """
  h = p['height']
  mass = p['mass']
  deg = np.pi / 180.0
  t = phase.shape[0]
  scene = Scene(t)
  coat = cond.has_coat
  loose = cond.looseness if coat else 1.0

  # Pelvis: lateral sway over the stance leg, yaw with the forward leg.
  pelvis = np.stack([np.zeros(t), -p['sway'] * h * np.cos(phase),
                     np.zeros(t)], -1)  # [T, 3]
  rot_p = _rot_z(-p['pelvis_yaw'] * deg * np.sin(phase))  # [T, 3, 3]
  rot_t = _rot_z(p['torso_yaw'] * deg * np.sin(phase)) @ _rot_y(
      np.full(t, p['lean'] * deg))  # [T, 3, 3]

  # Legs.
  ankle_h = 0.04 * h
  leg_len = p['leg'] * h - ankle_h
  thigh_len, shin_len = p['thigh'] * leg_len, (1 - p['thigh']) * leg_len
  thigh_r, shin_r = p['thigh_r'] * h * mass, p['shin_r'] * h * mass
  foot_r = 0.02 * h * mass
  add = np.arcsin(0.4 * p['hip'] / p['leg'])  # feet closer than hips
  feet, knees_hem = [], []
  for side, ph in ((1, phase), (-1, phase + np.pi)):
    hip_a = (p['hip_offset'] + p['stride'] * np.sin(ph)) * deg
    knee_a = (p['knee'] * _vm(ph + 0.2 * np.pi, 2.5)
              + p['knee_stance'] * _vm(ph - 0.75 * np.pi, 4.0)) * deg
    shin_a = hip_a - knee_a
    plantar = 20.0 * deg * _vm(ph + 0.45 * np.pi, 4.0)
    hip_j = pelvis + _apply(rot_p, np.array([0.0, side * p['hip'] * h, 0.0]))
    thigh_v = _apply(rot_p, _limb(hip_a, -side * add, thigh_len))
    knee_j = hip_j + thigh_v
    ankle_j = knee_j + _apply(rot_p, _limb(shin_a, -side * add, shin_len))
    foot_dir = _apply(rot_p @ _rot_z(np.full(t, -side * p['toe_out'] * deg)),
                      _limb(shin_a + np.pi / 2 - plantar, 0.0, 1.0))
    heel = ankle_j - 0.25 * p['foot'] * h * foot_dir
    toe = ankle_j + 0.75 * p['foot'] * h * foot_dir
    low = np.array([0.0, 0.0, -0.6 * ankle_h])
    scene.cone(hip_j, knee_j, thigh_r, 0.72 * thigh_r)
    scene.cone(knee_j, ankle_j, shin_r, 0.65 * shin_r)
    scene.cone(heel + low, toe + low, foot_r, 0.8 * foot_r)
    feet.append(np.minimum(heel[:, 2], toe[:, 2]) + low[2] - foot_r)
    if coat:  # Coat skirt over the thigh, flaring towards the hem.
      hem_j = hip_j + cond.hem * thigh_v
      scene.cone(hip_j, hem_j, 1.15 * loose * thigh_r,
                 cond.flare * thigh_r)
      knees_hem.append(hem_j)

  # Trunk and head, in the torso frame.
  up_t = _apply(rot_t, np.array([0.0, 0.0, 1.0]))  # [T, 3]
  fwd_t = _apply(rot_t, np.array([1.0, 0.0, 0.0]))
  lat_t = _apply(rot_t, np.array([0.0, 1.0, 0.0]))
  head_r = p['head'] * h
  neck_z = h - 2.3 * head_r - p['neck'] * h
  torso_len = neck_z - p['leg'] * h
  neck = pelvis + torso_len * up_t
  cw, cd = p['chest_width'] * h * mass, p['chest_depth'] * h * mass
  scene.ellipsoid(pelvis + 0.03 * h * up_t, rot_p,
                  loose * mass * h * np.array(
                      [0.065, p['hip'] + 0.35 * p['thigh_r'], 0.075]))
  scene.ellipsoid(pelvis + 0.32 * torso_len * up_t, rot_t, loose * np.array(
      [p['belly'] * h * mass, 0.88 * cw, 0.3 * torso_len]))
  chest = pelvis + 0.68 * torso_len * up_t
  scene.ellipsoid(chest, rot_t,
                  loose * np.array([cd, cw, 0.3 * torso_len]))
  head = (neck + (p['neck'] * h + 1.1 * head_r) * up_t
          + p['head_forward'] * h * fwd_t)
  scene.ellipsoid(head, rot_t, head_r * np.array([1.0, 0.85, 1.15]))
  scene.cone(neck - 0.02 * h * up_t, head, (1.3 if coat else 1.0)
             * 0.028 * h * mass, 0.5 * head_r)
  if coat:  # Coat front and back flaps between the legs.
    mid_hem = 0.5 * (knees_hem[0] + knees_hem[1])
    scene.cone(pelvis, mid_hem, loose * p['hip'] * h * mass,
               0.9 * cond.flare * thigh_r)

  # Arms: swing opposite to the leg of the same side.
  arm_r = p['arm_r'] * h * mass
  sleeve = cond.sleeve if coat else 1.0
  shoulders, hands = [], []
  for side, ph in ((1, phase + np.pi), (-1, phase)):
    carrying = cond.has_bag and cond.bag == 'hand' and side == cond.side
    swing = p['arm_swing'] * (0.25 if carrying else 1.0)
    ua = (p['arm_offset'] + swing * np.sin(ph)) * deg
    fa = ua + p['elbow'] * (0.6 + 0.4 * np.sin(ph)) * deg
    roll = side * p['arm_abduct'] * deg
    sh = neck - 0.035 * h * up_t + side * p['shoulder'] * h * lat_t
    el = sh + _apply(rot_t, _limb(ua, roll, p['upper_arm'] * h))
    wr = el + _apply(rot_t, _limb(fa, roll, p['forearm'] * h))
    tip = wr + _apply(rot_t, _limb(fa, roll, 0.09 * h))
    scene.cone(sh, el, 1.15 * sleeve * arm_r, 0.9 * sleeve * arm_r)
    scene.cone(el, wr, 0.9 * sleeve * arm_r, 0.7 * arm_r)
    scene.cone(wr, tip, 0.75 * arm_r, 0.55 * arm_r)
    shoulders.append(sh)
    hands.append(tip)
  scene.cone(shoulders[0], shoulders[1], 1.25 * loose * arm_r)

  if cond.has_bag:
    _add_bag(scene, p, cond, pelvis, chest, rot_p, rot_t, shoulders, hands,
             phase)

  # Lift so that the lower foot rests on the ground (gives the vertical bob).
  arrays = scene.arrays()
  lift = -np.minimum(feet[0], feet[1])  # [T]
  for k in ('cone_a', 'cone_b', 'ell_c'):
    arrays[k] = arrays[k] + np.stack(
        [np.zeros(t), np.zeros(t), lift], -1)[:, None, :]
  return arrays


def _add_bag(scene: Scene, p: IdentityParams, cond: Condition,
             pelvis: np.ndarray, chest: np.ndarray, rot_p: np.ndarray,
             rot_t: np.ndarray, shoulders: list[np.ndarray],
             hands: list[np.ndarray], phase: np.ndarray) -> None:
  """Adds the bag of a 'bg' condition (moves with the body part it hangs on).
  """
  h, s = p['height'], cond.bag_size
  fwd_t = _apply(rot_t, np.array([1.0, 0.0, 0.0]))
  up = np.array([0.0, 0.0, 1.0])
  strap_r = 0.009 * h
  if cond.bag == 'backpack':
    depth = 0.07 * h * s
    # Over a coat the backpack sits further back (1.0 without one: exact).
    loose = cond.looseness if cond.has_coat else 1.0
    centre = (chest - (p['chest_depth'] * h * p['mass'] * loose + 0.8 * depth)
              * fwd_t - 0.03 * h * up)
    scene.ellipsoid(centre, rot_t, np.array([depth, 0.12 * h * s,
                                             0.17 * h * s]))
  elif cond.bag == 'shoulder':
    # Cross-body strap from the opposite shoulder to a bag at the hip.
    swing = 0.015 * h * np.sin(phase)[:, None] * np.array([1.0, 0.0, 0.0])
    centre = (pelvis + _apply(rot_p, np.array(
        [-0.01, cond.side * (p['hip'] + p['thigh_r'] + 0.045), 0.04]) * h)
              + swing)
    scene.ellipsoid(centre, rot_p, h * s * np.array([0.12, 0.045, 0.1]))
    other = shoulders[0] if cond.side < 0 else shoulders[1]
    scene.cone(other, centre + 0.08 * h * s * up, strap_r)
  else:  # Hand bag hanging from the carrying hand.
    hand = hands[0] if cond.side > 0 else hands[1]
    centre = hand - (0.03 + 0.085 * s) * h * up
    scene.ellipsoid(centre, rot_p, h * s * np.array([0.11, 0.04, 0.085]))
    scene.cone(hand, centre + 0.06 * h * s * up, strap_r)
