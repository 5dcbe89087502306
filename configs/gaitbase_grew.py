r"""GaitBase on GREW: OpenGait's
``configs/gaitbase/gaitbase_da_grew.yaml``.

  python -m data_prep.convert --dataset=grew --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/gaitbase_grew.py \
      --workdir=workdirs/gaitbase_grew
  python launch.py --config=configs/gaitbase_grew.py:gil \
      --workdir=workdirs/gaitbase_grew_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 80k, 120k and
150k, 180k steps; P×K 32×4, shuffled; 20-40 random frames per sequence
(``unfixed_unordered``, padded and masked); OpenGait's training augmentation,
per sequence: random perspective (p 0.2, before the cut), random horizontal
flip (p 0.2), random rotation (p 0.2, ±10°); see
``gait_jax/data/augment_geometric.py``; triplet 1.0 (margin 0.2) + CE 1.0
(scale 16, label smoothing 0.1); test batch 16, first 720 frames.

Reference (OpenGait model zoo, ``gaitbase_da_grew.yaml``): rank-1 60.1 on
GREW's test server (now closed); ``--mode=eval`` prints the local proxy and
writes the submission file.

Hardware: The float32 train step of the 32×4 batch needs about 53 GiB on one
device (14.8 GiB per device over 4, 8.2 over 8; XLA's estimate with the CPU
compiler, ``--mode=compile``): one 80 GB GPU, four 16 GB GPUs (14.8 GiB each),
or eight 16 GB GPUs (8.2 GiB each). OpenGait trains it with fp16 autocast;
pass ``--config.train.compute_dtype=bfloat16`` on accelerators.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitbase', dataset='grew',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(80_000, 120_000, 150_000), num_steps=180_000,
      pk=(32, 4), sampler='unfixed_unordered', batch_shuffle=True,
      frames_range=(20, 40),
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      augment=common.WILD_AUGMENT,
      eval_batch_size=16, frame_limit=720)
