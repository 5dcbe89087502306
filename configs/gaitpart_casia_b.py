r"""GaitPart on CASIA-B: OpenGait's ``configs/gaitpart/gaitpart.yaml``.

  python launch.py --config=configs/gaitpart_casia_b.py \
      --workdir=workdirs/gaitpart_casia_b
  python launch.py --config=configs/gaitpart_casia_b.py:gil \
      --workdir=workdirs/gaitpart_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: Adam lr 1e-4, no weight decay, lr ×0.1 at 100k, 120k steps; P×K
8×16; 30 ordered frames out of a 40-frame window (skip 10); triplet only;
test batch 16.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
NM 96.1, BG 90.7, CL 78.7 (paper: 96.2 / 91.5 / 78.7). OpenGait trained it on
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
      arg, model='gaitpart', dataset='casia_b',
      optim=common.adam(lr=1e-4, weight_decay=0.0),
      schedule=common.multistep(100_000), num_steps=120_000, pk=(8, 16),
      sampler='fixed_ordered', frames_skip=10, batch_shuffle=False,
      eval_batch_size=16)
