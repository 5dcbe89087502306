"""GaitSet (tiny variant) on the built-in synthetic gait dataset.

The job `make demo` runs: it renders the synthetic dataset (CASIA-B naming:
nm/bg/cl types, 11 views) into ./data if missing, trains for a few hundred
steps and prints the CASIA-B-protocol rank-1 table (NM/BG/CL, identical view
excluded). It needs no accelerator: about 5 minutes on 2 CPU cores.

  python launch.py --config=configs/synthetic_demo.py \
      --workdir=workdirs/synthetic_demo
  # The loss is chosen by the argument: triplet (default), gil_rc or gil.
  python launch.py --config=configs/synthetic_demo.py:gil \
      --workdir=workdirs/synthetic_demo_gil

Chance level of rank-1 is 1 / (number of test subjects) = 1/16 = 6.25 %.
"""

from gait_jax import config as config_lib
from gait_jax import losses

LOSS_PRESETS = ('triplet', 'gil_rc', 'gil')


def get_config(arg: str = ''):
  """Args: the loss preset ('' → 'triplet')."""
  preset = arg or 'triplet'
  if preset not in LOSS_PRESETS:
    raise ValueError(f'configs/synthetic_demo.py:{arg}: unknown loss preset; '
                     f'valid: {LOSS_PRESETS}.')
  c = config_lib.base_config()
  c.model.name = 'gaitset'
  c.model.variant = 'tiny'
  c.loss = losses.get_loss_config(preset)

  c.data.source = 'synthetic'
  c.data.data_dir = 'data'
  c.data.p = 8
  c.data.k = 4
  c.data.num_frames = 16
  c.data.frame_sampler = 'fixed_unordered'

  c.optim.name = 'adam'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.schedule.name = 'multistep'
  c.schedule.milestones = (250,)

  c.train.num_steps = 300
  c.train.log_every = 50
  c.train.ckpt_every = 100
  c.eval.batch_size = 32
  c.eval.buckets = (32, 64)
  return c
