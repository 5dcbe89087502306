r"""GaitPart on OUMVLP: OpenGait's ``configs/gaitpart/gaitpart_OUMVLP.yaml``.

  python launch.py --config=configs/gaitpart_oumvlp.py \
      --workdir=workdirs/gaitpart_oumvlp
  python launch.py --config=configs/gaitpart_oumvlp.py:gil \
      --workdir=workdirs/gaitpart_oumvlp_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``.

Recipe: Adam lr 1e-4, no weight decay, lr ×0.1 at 150k, 250k steps; P×K
32×16; 30 ordered frames out of a 40-frame window (skip 10); triplet only;
test batch 4.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
88.6 (paper: 88.7).

Hardware: 8 accelerators (OpenGait trains OUMVLP on 8 GPUs, 10-30 h). With
the 32×16 batch split over 8 devices the float32 train step needs about
8.5 GiB per device: 8 GPUs of 16 GB.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitpart', dataset='oumvlp',
      optim=common.adam(lr=1e-4, weight_decay=0.0),
      schedule=common.multistep(150_000), num_steps=250_000, pk=(32, 16),
      sampler='fixed_ordered', frames_skip=10, batch_shuffle=False,
      eval_batch_size=4)
