r"""GaitBase on CCPG: OpenGait's
``configs/gaitbase/gaitbase_ccpg.yaml``.

  python -m data_prep.convert --dataset=ccpg --raw_dir=<raw> --out_dir=data
  python launch.py --config=configs/gaitbase_ccpg.py \
      --workdir=workdirs/gaitbase_ccpg
  python launch.py --config=configs/gaitbase_ccpg.py:gil \
      --workdir=workdirs/gaitbase_ccpg_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run on the built-in synthetic set), comma-separated; see
``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 20k, 40k and
50k, 60k steps; P×K 8×16, shuffled; 30 random frames (unordered); triplet 1.0
(margin 0.2) + CE 1.0 (scale 16, label smoothing 0.1); test batch 16, first
720 frames. No augmentation besides the cut.

Reference: OpenGait's model zoo has no GaitBase CCPG rank-1.

Hardware: The float32 train step of the 8×16 batch needs about 39 GiB on one
device (9.8 GiB per device over 4, 5.0 over 8; XLA's estimate with the CPU
compiler, ``--mode=compile``): one 80 GB GPU, four 16 GB GPUs (9.8 GiB each),
or eight 16 GB GPUs (5.0 GiB each). OpenGait trains it with fp16 autocast;
pass ``--config.train.compute_dtype=bfloat16`` on accelerators.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitbase', dataset='ccpg',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(20_000, 40_000, 50_000), num_steps=60_000,
      pk=(8, 16), sampler='fixed_unordered', batch_shuffle=True,
      ce=dict(weight=1.0, scale=16.0, label_smoothing=0.1),
      eval_batch_size=16, frame_limit=720)
