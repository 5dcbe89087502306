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
  # The loss is chosen by the argument: triplet (default), gil_rc or gil.
  python launch.py --config=configs/synthetic_wild.py:gil \\
      --workdir=workdirs/synthetic_wild_gil

Chance level of rank-1 is 1 / (number of test subjects) = 1/40 = 2.5 %.
"""

from configs import common
from gait_jax import config as config_lib
from gait_jax import losses

LOSS_PRESETS = ('triplet', 'gil_rc', 'gil')


def get_config(arg: str = ''):
  """Args: the loss preset ('' → 'triplet')."""
  preset = arg or 'triplet'
  if preset not in LOSS_PRESETS:
    raise ValueError(f'configs/synthetic_wild.py:{arg}: unknown loss preset; '
                     f'valid: {LOSS_PRESETS}.')
  c = config_lib.base_config()
  c.model.name = 'deepgaitv2'
  c.model.variant = 'tiny'
  c.model.channels = (4, 8, 16, 32)  # Wider than the test-size 'tiny'.
  c.loss = losses.get_loss_config(
      preset, ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1))

  c.data.source = 'synthetic_wild'
  c.data.data_dir = 'data'
  # Nuisances at half their default strength (occlusion, frame-border
  # cuts, segmentation noise, turning paths, camera distance).
  # Identities twice as far apart as the renderer's default, so that the
  # 600-step tiny model lands between chance and saturation (rank-1 50 %).
  c.data.synthetic_wild.identity_spread = 2.0
  c.data.synthetic_wild.wild.update(dict(
      occlusion=0.5, border=0.5, seg_noise=0.5, view_change=0.5,
      distance=0.5))
  c.data.p = 8
  c.data.k = 4
  c.data.num_frames = 12
  c.data.frame_sampler = 'fixed_ordered'  # OpenGait's DeepGaitV2 sampler.
  c.data.frames_skip = 4
  c.data.batch_shuffle = True
  c.data.augment.update(common.WILD_AUGMENT)

  c.optim.name = 'adam'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.schedule.name = 'multistep'
  c.schedule.milestones = (450,)

  c.train.num_steps = 600
  c.train.log_every = 100
  c.train.ckpt_every = 300
  c.eval.batch_size = 32
  c.eval.buckets = (32, 64, 160)
  return c
