r"""GaitSet on OUMVLP: OpenGait's ``configs/gaitset/gaitset_OUMVLP.yaml``.

  python launch.py --config=configs/gaitset_oumvlp.py \
      --workdir=workdirs/gaitset_oumvlp
  python launch.py --config=configs/gaitset_oumvlp.py:gil \
      --workdir=workdirs/gaitset_oumvlp_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: Adam lr 1e-4, no weight decay, lr ×0.1 at 150k, 250k steps; P×K
32×16; 30 random frames (unordered); triplet only; test batch 4.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
87.2 (paper: 87.1).

Hardware: 8 accelerators (OpenGait trains OUMVLP on 8 GPUs, 10-30 h). With
the 32×16 batch split over 8 devices the float32 train step needs about
17 GiB per device: 8 GPUs of 24 GB or more, or 16 of 16 GB.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitset', dataset='oumvlp',
      optim=common.adam(lr=1e-4, weight_decay=0.0),
      schedule=common.multistep(150_000), num_steps=250_000, pk=(32, 16),
      sampler='fixed_unordered', batch_shuffle=False, eval_batch_size=4)
