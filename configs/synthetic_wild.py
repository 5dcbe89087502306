"""DeepGaitV2 (tiny) on the built-in in-the-wild synthetic gait dataset.

The job `make demo-wild` runs: it renders the Gait3D-style synthetic dataset
(random and changing viewpoints, occlusion, frame-border cuts, segmentation
noise, 10-150 frame sequences; ``data_prep/synthetic/wild.py``) into ./data if
missing, trains DeepGaitV2-tiny with OpenGait's DeepGaitV2 frame sampler and
augmentations, and prints the Gait3D protocol's rank-1/5/10, mAP and mINP
(one probe sequence per test subject, every other test sequence gallery). It
needs no accelerator.

  python launch.py --config=configs/synthetic_wild.py \\
      --workdir=workdirs/synthetic_wild
  # The loss is chosen by the argument: triplet (default), gil_rc or gil;
  # 'trackletgait' (alone or after the loss, comma-separated) trains a tiny
  # TrackletGait instead, with its tracklet sampler (16 frames in tracklets
  # of 4, 8 or 16) and hardness-exclusion triplet.
  python launch.py --config=configs/synthetic_wild.py:gil \\
      --workdir=workdirs/synthetic_wild_gil
  python launch.py --config=configs/synthetic_wild.py:trackletgait \\
      --workdir=workdirs/synthetic_wild_trackletgait

Chance level of rank-1 is 1 / (number of test subjects) = 1/40 = 2.5 %.
"""

from configs import common
from gait_jax import config as config_lib
from gait_jax import losses

LOSS_PRESETS = ('triplet', 'gil_rc', 'gil')
MODELS = ('deepgaitv2', 'trackletgait')
# TrackletGait's layers at the demo's width (DeepGaitV2's 4/8/16/32).
TRACKLETGAIT_LAYOUT = ((1, 'plain', 8), (2, 'haar', 16), (3, 'temporal', 16),
                       (6, 'haar', 32), (10, 'temporal', 32))


def get_config(arg: str = ''):
  """Args: the loss preset ('' → 'triplet') and/or a model of `MODELS`
  ('' → 'deepgaitv2'), comma-separated."""
  parts = [a for a in (arg or '').split(',') if a]
  unknown = [a for a in parts if a not in LOSS_PRESETS + MODELS]
  if unknown:
    raise ValueError(f'configs/synthetic_wild.py:{arg}: unknown {unknown}; '
                     f'valid: loss presets {LOSS_PRESETS}, models {MODELS}.')
  preset = next((a for a in parts if a in LOSS_PRESETS), 'triplet')
  model = next((a for a in parts if a in MODELS), 'deepgaitv2')
  c = config_lib.base_config()
  c.model.name = model
  c.model.variant = 'tiny'
  triplet = {}
  if model == 'deepgaitv2':
    c.model.channels = (4, 8, 16, 32)  # Wider than the test-size 'tiny'.
  else:
    c.model.layout = TRACKLETGAIT_LAYOUT
    c.model.stem_channels = 4
    c.model.hidden_dim = 16
    triplet = {'triplet': {'hard_exclusion': True}}
  c.loss = losses.get_loss_config(
      preset, ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1), **triplet)

  c.data.source = 'synthetic_wild'
  c.data.data_dir = 'data'
  # Nuisances at half their default strength (occlusion, frame-border
  # cuts, segmentation noise, turning paths, camera distance).
  # Identities twice as far apart as the renderer's default, so that the
  # 450-step tiny model lands between chance and saturation.
  c.data.synthetic_wild.identity_spread = 2.0
  c.data.synthetic_wild.wild.update(dict(
      occlusion=0.5, border=0.5, seg_noise=0.5, view_change=0.5,
      distance=0.5))
  c.data.p = 8
  c.data.k = 4
  c.data.num_frames = 12
  c.data.frame_sampler = 'fixed_ordered'  # OpenGait's DeepGaitV2 sampler.
  c.data.frames_skip = 4
  if model == 'trackletgait':
    c.data.num_frames = 16
    c.data.frame_sampler = 'tracklet'
    c.data.frames_skip = 0
    c.data.tracklet_lengths = (4, 8, 16)
  c.data.batch_shuffle = True
  c.data.augment.update(common.WILD_AUGMENT)

  c.optim.name = 'adam'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.schedule.name = 'multistep'
  c.schedule.milestones = (340,)

  c.train.num_steps = 450
  c.train.log_every = 50
  c.train.ckpt_every = 150
  c.eval.batch_size = 32
  c.eval.buckets = (32, 64, 160)
  return c
