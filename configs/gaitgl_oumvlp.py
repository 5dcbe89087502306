r"""GaitGL on OUMVLP: OpenGait's ``configs/gaitgl/gaitgl_OUMVLP.yaml``.

  python launch.py --config=configs/gaitgl_oumvlp.py \
      --workdir=workdirs/gaitgl_oumvlp
  python launch.py --config=configs/gaitgl_oumvlp.py:gil_rc \
      --workdir=workdirs/gaitgl_oumvlp_gil_rc

Argument: a loss preset (triplet (default), gil_rc, gil) and/or ``smoke`` (a
one-minute CPU run), comma-separated; see ``configs/common.py``. With
``gil_rc`` the loss is the GIL authors' OUMVLP composition: weighted triplet
1.0 + pair-softmax 1.0 + CE 1.0 (their optimizer recipe, SGD with a cosine
schedule, is not applied: pass it with ``--config.optim.*`` and
``--config.schedule.*``).

Recipe: Adam lr 1e-4, no weight decay, lr ×0.1 at 150k and 200k, 210k steps;
P×K 32×8, shuffled; 30 consecutive frames; triplet 1.0 + CE 1.0 (scale 1,
label smoothing 0.1); test batch 2.

Reference rank-1 (OpenGait model zoo, triplet, identical views excluded):
89.9 (paper: 89.7).

Hardware: 8 accelerators (OpenGait trains OUMVLP on 8 GPUs, 10-30 h). With
the 32×8 batch split over 8 devices the float32 train step needs about
8.5 GiB per device (95.6M parameters): 8 GPUs of 16 GB.
"""

from configs import common


def get_config(arg: str = ''):
  """Returns the config; ``arg``: see ``configs.common.parse_arg``."""
  return common.build(
      arg, model='gaitgl', dataset='oumvlp',
      optim=common.adam(lr=1e-4, weight_decay=0.0),
      schedule=common.multistep(150_000, 200_000), num_steps=210_000,
      pk=(32, 8), sampler='fixed_ordered', batch_shuffle=True,
      ce=dict(weight=1.0, scale=1.0, label_smoothing=0.1),
      preset_loss={'gil_rc': {'pair_softmax': {'weight': 1.0}}},
      eval_batch_size=2)
