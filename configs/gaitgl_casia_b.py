r"""GaitGL on CASIA-B: OpenGait's ``configs/gaitgl/gaitgl.yaml``.

  python launch.py --config=configs/gaitgl_casia_b.py \
      --workdir=workdirs/gaitgl_casia_b
  python launch.py --config=configs/gaitgl_casia_b.py:gil \
      --workdir=workdirs/gaitgl_casia_b_gil

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``. The GIL
authors' own GaitGL recipe is ``configs/gaitgl_casia_b_gil_authors.py``.

Recipe: Adam lr 1e-4, weight decay 5e-4, lr ×0.1 at 70k, 80k steps; P×K 8×8,
shuffled; 30 consecutive frames; triplet 1.0 + CE 1.0 (scale 1, no label
smoothing); test batch 4.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
NM 97.4, BG 94.5, CL 83.8 (paper: 97.4 / 94.5 / 83.6).

Hardware: a GPU or TPU host. The float32 train step of the 8×8 batch needs
about 7 GiB: P×K=8×8 fits one 16 GB GPU.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitgl', dataset='casia_b',
      optim=common.adam(lr=1e-4, weight_decay=5e-4),
      schedule=common.multistep(70_000), num_steps=80_000, pk=(8, 8),
      sampler='fixed_ordered', batch_shuffle=True,
      ce=dict(weight=1.0, scale=1.0, label_smoothing=0.0),
      eval_batch_size=4)
