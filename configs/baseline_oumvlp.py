r"""Baseline (Plain backbone) on OUMVLP: OpenGait's ``baseline_OUMVLP.yaml``.

(``configs/baseline/baseline_OUMVLP.yaml``, removed from OpenGait in 2023 in
favour of GaitBase.)

  python launch.py --config=configs/baseline_oumvlp.py \
      --workdir=workdirs/baseline_oumvlp
  python launch.py --config=configs/baseline_oumvlp.py:gil \
      --workdir=workdirs/baseline_oumvlp_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 50k and
100k, 150k steps; P×K 32×16, shuffled; 30 random frames (unordered); triplet
1.0 + CE 0.1 (scale 16, label smoothing 0.1); test batch 4, first 720 frames.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
86.7.

Hardware: 8 accelerators (OpenGait trains OUMVLP on 8 GPUs, 10-30 h). With
the 32×16 batch split over 8 devices the float32 train step needs about
9 GiB per device: 8 GPUs of 16 GB.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='baseline', dataset='oumvlp',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(50_000, 100_000), num_steps=150_000,
      pk=(32, 16), sampler='fixed_unordered', batch_shuffle=True,
      ce=dict(weight=0.1, scale=16.0, label_smoothing=0.1),
      eval_batch_size=4, frame_limit=720)
