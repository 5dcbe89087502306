r"""GaitBase on CASIA-B: OpenGait's ``gaitbase_da_casiab.yaml`` recipe.

  python launch.py --config=configs/gaitbase_casia_b.py \
      --workdir=workdirs/gaitbase_casia_b
  python launch.py --config=configs/gaitbase_casia_b.py:gil \
      --workdir=workdirs/gaitbase_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 20k, 40k and
50k, 60k steps; P×K 8×16, shuffled; 30 random frames (unordered); OpenGait's
training augmentation after cutting, per sequence: random rotation (p 0.3,
one angle in ±10° per sequence, about OpenGait's swapped centre) then random
erasing (p 0.3, one rectangle of 5-20% of the frame, aspect 0.3-3.3, for the
whole sequence); see ``gait_jax/data/augment.py``; triplet 1.0 + CE 1.0
(scale 16, label smoothing 0.1); test batch 16, first 720 frames. The
augmentation's draws come from the run's seed and the step instead of
Python's global ``random``, and rotated frames are rounded to uint8 (within
0.5/255 of OpenGait's float frames).

Reference rank-1 (OpenGait model zoo, with that augmentation, identical views
excluded): NM 97.6, BG 94.0, CL 77.4.

Hardware: a GPU or TPU host (OpenGait's maintainers: "several hours" on
CASIA-B). The float32 train step of the 8×16 batch needs about 50 GiB on one
device: one 80 GB GPU, or the batch split over four 16 GB GPUs (about
13 GiB each).
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitbase', dataset='casia_b',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(20_000, 40_000, 50_000), num_steps=60_000,
      pk=(8, 16), sampler='fixed_unordered', batch_shuffle=True,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      # RandomRotate(prob=0.3, degree=10), RandomErasing(prob=0.3).
      augment=dict(rotate_prob=0.3, rotate_degree=10.0, erase_prob=0.3,
                   erase_area=(0.05, 0.2), erase_ratio=0.3),
      eval_batch_size=16, frame_limit=720)
