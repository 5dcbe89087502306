r"""GaitBase on OUMVLP: OpenGait's ``configs/gaitbase/gaitbase_oumvlp.yaml``.

  python launch.py --config=configs/gaitbase_oumvlp.py \
      --workdir=workdirs/gaitbase_oumvlp
  python launch.py --config=configs/gaitbase_oumvlp.py:gil \
      --workdir=workdirs/gaitbase_oumvlp_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 60k, 80k and
100k, 120k steps; P×K 32×8, shuffled; 30 random frames (unordered), no
augmentation; triplet 1.0 + CE 1.0 (scale 16, label smoothing 0.1); test
batch 16, first 720 frames.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
90.8.

Hardware: 8 accelerators (OpenGait trains OUMVLP on 8 GPUs, 10-30 h). With
the 32×8 batch split over 8 devices the float32 train step needs about
13 GiB per device: 8 GPUs of 16 GB.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitbase', dataset='oumvlp',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(60_000, 80_000, 100_000), num_steps=120_000,
      pk=(32, 8), sampler='fixed_unordered', batch_shuffle=True,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      eval_batch_size=16, frame_limit=720)
