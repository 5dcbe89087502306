"""Training-curve parity: 30 steps of each tiny model, JAX against PyTorch.

`torch_compat.train_parity_report` trains a PyTorch mirror (tests/
torch_mirrors.py) and its converted Flax twin on the same P×K batches of the
`tiny_dataset` fixture, each with its own implementation of the loss,
optimizer and schedule; every step's losses and the parameters after the
last step must agree to 1e-3 (see docs/parity.md for the tolerances).
Each model runs another recipe, so that the cases together cover the loss
presets (triplet, gil_rc, gil, with and without the CE term), SGD and Adam
with L2 decay, the three schedules and the augmentation. The learning
rates are small enough that PyTorch float32 itself stays within 6e-4 (loss)
and 2e-4 (parameters) of a float64 run of the same recipe over the 30 steps
(its float32 floor), so that 1e-3 separates implementation differences from
rounding; at the recipes' own rates these tiny runs are chaotic in float32
(docs/parity.md).
"""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip('torch')

# pylint: disable=g-import-not-at-top,wrong-import-position
import torch_mirrors
from gait_jax import config as config_lib
from gait_jax import losses
from gait_jax import torch_compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
STEPS = 30
TOL = 1e-3

SGD = dict(name='sgd', lr=0.003, momentum=0.9, weight_decay=5e-4)
ADAM = dict(name='adam', lr=1e-4, weight_decay=5e-4)
CE = dict(weight=1.0, scale=16.0, label_smoothing=0.1)
RECIPES = {
    'gaitset': dict(preset='triplet', optim=dict(SGD, lr=0.01),
                    schedule=dict(name='multistep', milestones=(20,))),
    'gaitpart': dict(preset='gil_rc', optim=SGD,
                     schedule=dict(name='constant')),
    'gaitgl': dict(preset='triplet', optim=dict(SGD, lr=0.001),
                   ce=dict(weight=1.0, scale=1.0, label_smoothing=0.0),
                   schedule=dict(name='multistep', milestones=(15, 25))),
    'baseline': dict(preset='gil', optim=dict(SGD, lr=0.001),
                     ce=dict(CE, weight=0.1),
                     schedule=dict(name='cosine', warmup_steps=5,
                                   warmup_init_lr=1e-4, min_lr=1e-4)),
    'gaitbase': dict(preset='triplet', optim=ADAM, ce=CE,
                     schedule=dict(name='multistep', milestones=(20,)),
                     augment=dict(rotate_prob=0.5, erase_prob=0.5)),
}


def parity_config(dataset_dir, name, num_devices=1, steps=STEPS):
  """A tiny-variant config of model `name` with its recipe of `RECIPES`."""
  recipe = RECIPES[name]
  c = config_lib.base_config()
  c.model.name, c.model.variant = name, 'tiny'
  c.loss = losses.get_loss_config(
      recipe['preset'], **({'ce': recipe['ce']} if 'ce' in recipe else {}))
  c.data.source, c.data.dataset_dir = 'tfds', dataset_dir
  c.data.p, c.data.k, c.data.num_frames = 4, 2, 6
  c.data.batch_shuffle = True
  c.data.augment.update(recipe.get('augment', {}))
  c.optim.update(recipe['optim'])
  c.schedule.update(recipe['schedule'])
  c.train.num_steps = steps
  c.train.num_devices = num_devices
  c.lock()
  return c


def run_parity(dataset_dir, name, num_devices=1):
  torch.manual_seed(0)
  module = torch_mirrors.build(name, 'tiny')
  return torch_compat.train_parity_report(
      parity_config(dataset_dir, name, num_devices), module, STEPS,
      param_every=STEPS, log=print)


_REPORTS = {}

# GaitSet, GaitPart and GaitGL are `slow`: Baseline and GaitBase cover the
# SGD and Adam recipes, CE and BatchNorm statistics in `make test`.
FAST = ('baseline', 'gaitbase')


@pytest.mark.parametrize('name', [
    n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
    for n in sorted(RECIPES)])
def test_training_curves_match_pytorch(tiny_dataset, name):
  report = run_parity(tiny_dataset, name)
  _REPORTS[name] = report
  assert report['initial_param_diff'] == 0.0
  assert len(report['loss_jax']) == STEPS
  assert report['lr_jax'] == pytest.approx(report['lr_torch'], rel=1e-5)
  assert report['max_rel_loss_diff'] <= TOL, report['loss_rel_diff']
  assert report['param_max_rel_diff'] <= TOL, report['worst_param']
  if report['bn_stats_max_rel_diff'] is not None:
    assert report['bn_stats_max_rel_diff'] <= TOL
  # The runs train: the parameters move (||θ - θ0|| / ||θ0|| about 5e-3).
  # The worst per-variable difference above is relative to that variable's
  # own size, which for a bias that starts at zero can be of the same order
  # as the whole model's relative change, so the two are not compared.
  assert report['param_change'] > 1e-3


def test_four_devices_equal_one(tiny_dataset):
  report = run_parity(tiny_dataset, 'baseline', num_devices=4)
  assert report['num_devices'] == 4
  assert report['max_rel_loss_diff'] <= TOL
  assert report['param_max_rel_diff'] <= TOL
  single = _REPORTS.get('baseline') or run_parity(tiny_dataset, 'baseline')
  for four, one in zip(report['loss_jax'], single['loss_jax']):
    assert four == pytest.approx(one, rel=TOL)


def test_launch_mode_writes_report(tiny_dataset, tmp_path):
  factory = tmp_path / 'mirror_factory.py'
  factory.write_text(
      'import torch, torch_mirrors\n'
      'def make():\n'
      '  torch.manual_seed(0)\n'
      "  return torch_mirrors.build('gaitset', 'tiny')\n")
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join((REPO, TESTS, str(tmp_path))),
             # The test suite's compilation cache (tests/conftest.py).
             JAX_COMPILATION_CACHE_DIR=os.path.join(REPO, '.cache',
                                                    'jax_tests'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')
  workdir = tmp_path / 'run'
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch.py'), '--mode=parity_train',
       '--torch_module=mirror_factory:make', '--steps=2',
       f'--workdir={workdir}', '--config=configs/synthetic_demo.py',
       '--config.model.name=gaitset', '--config.model.variant=tiny',
       '--config.data.source=tfds',
       f'--config.data.dataset_dir={tiny_dataset}', '--config.data.p=4',
       '--config.data.k=2', '--config.data.num_frames=6'],
      capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'loss_torch' in out.stdout
  report = json.loads((workdir / 'parity_train.json').read_text())
  for key in ('steps', 'loss_jax', 'loss_torch', 'max_rel_loss_diff',
              'param_max_rel_diff', 'bn_stats_max_rel_diff'):
    assert key in report
  assert report['steps'] == [1, 2]
  assert report['max_rel_loss_diff'] <= TOL
