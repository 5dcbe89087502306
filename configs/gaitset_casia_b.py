r"""GaitSet on CASIA-B: OpenGait's ``configs/gaitset/gaitset.yaml``.

  python launch.py --config=configs/gaitset_casia_b.py \
      --workdir=workdirs/gaitset_casia_b
  python launch.py --config=configs/gaitset_casia_b.py:gil \
      --workdir=workdirs/gaitset_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr ×0.1 at 10k, 20k and
30k, 40k steps; P×K 8×16; 30 random frames (unordered); triplet only; test
batch 16.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
NM 95.8, BG 90.0, CL 75.4 (paper: 95.0 / 87.2 / 70.4). OpenGait trained it on
the 73-subject partition (no subject 005) until 2023: convert with
``--partition=casia_b_73`` to match that.

Hardware: a GPU or TPU host. The float32 train step of the 8×16 batch needs
about 17 GiB on one device: one GPU with 24 GB or more, or the batch split
over two 16 GB GPUs.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitset', dataset='casia_b',
      optim=common.sgd(lr=0.1, weight_decay=5e-4),
      schedule=common.multistep(10_000, 20_000, 30_000), num_steps=40_000,
      pk=(8, 16), sampler='fixed_unordered', batch_shuffle=False,
      eval_batch_size=16)
