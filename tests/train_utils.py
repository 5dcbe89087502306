"""Shared helpers for the trainer tests: tiny configs on the tiny dataset."""

from gait_jax import config as config_lib
from gait_jax import losses


def tiny_config(dataset_dir: str, *, model: str = 'gaitset',
                preset: str = 'triplet', steps: int = 4):
  """A seconds-long training config on the ``tiny_dataset`` fixture."""
  c = config_lib.base_config()
  c.model.name = model
  c.model.variant = 'tiny'
  c.loss = losses.get_loss_config(preset)
  c.data.source = 'tfds'
  c.data.dataset_dir = dataset_dir
  c.data.p, c.data.k = 4, 2
  c.data.num_frames = 6
  c.optim.name = 'sgd'
  c.optim.lr = 0.05
  c.schedule.milestones = (3,)
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.ckpt_every = 2
  c.eval.batch_size = 8
  c.eval.buckets = (8, 16)
  c.eval.plots = False
  c.lock()
  return c
