r"""Baseline (Plain backbone) on CASIA-B: OpenGait's ``baseline.yaml``.

(``configs/baseline/baseline.yaml``, removed from OpenGait in 2023 in favour
of GaitBase.)

  python launch.py --config=configs/baseline_casia_b.py \
      --workdir=workdirs/baseline_casia_b
  python launch.py --config=configs/baseline_casia_b.py:gil \
      --workdir=workdirs/baseline_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 20k and 40k,
60k steps; P×K 8×16, shuffled; 30 random frames (unordered); triplet 1.0 +
CE 0.1 (scale 16, label smoothing 0.1); test batch 16, first 720 frames.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
NM 96.3, BG 92.2, CL 77.6.

Hardware: a GPU or TPU host. The float32 train step of the 8×16 batch needs
about 33 GiB on one device: one 40 GB or larger GPU, or the batch split over
four 16 GB GPUs.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='baseline', dataset='casia_b',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(20_000, 40_000), num_steps=60_000,
      pk=(8, 16), sampler='fixed_unordered', batch_shuffle=True,
      ce=dict(weight=0.1, scale=16.0, label_smoothing=0.1),
      eval_batch_size=16, frame_limit=720)
