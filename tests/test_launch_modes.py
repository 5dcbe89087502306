"""launch.py --mode=convert / eval / parity / compile on a PyTorch mirror."""

import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import torch

import torch_mirrors
from gait_jax import torch_compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def _launch(*args, extra_path=''):
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join(p for p in (REPO, TESTS, extra_path)
                                        if p))
  return subprocess.run([sys.executable, os.path.join(REPO, 'launch.py'),
                         *args], capture_output=True, text=True, cwd=REPO,
                        env=env, timeout=600)


def _model_flags(dataset_dir):
  return ['--config=configs/synthetic_demo.py',
          '--config.model.name=baseline', '--config.model.variant=tiny',
          '--config.model.num_classes=8', '--config.data.source=tfds',
          f'--config.data.dataset_dir={dataset_dir}',
          '--config.data.num_frames=6', '--config.eval.buckets=(8,16)',
          '--config.eval.plots=False']


def test_convert_then_eval(tiny_dataset, tmp_path):
  torch.manual_seed(0)
  mirror = torch_mirrors.build('baseline', 'tiny')
  path = tmp_path / 'opengait.pt'
  torch.save({'model': mirror.state_dict(), 'iteration': 100}, path)
  workdir = tmp_path / 'converted'
  out = _launch('--mode=convert', f'--checkpoint={path}',
                f'--workdir={workdir}', *_model_flags(tiny_dataset))
  assert out.returncode == 0, out.stderr[-3000:]

  # The orbax checkpoint holds exactly the converted variables.
  want = torch_compat.load_opengait_checkpoint(
      str(path), 'baseline', {'variant': 'tiny', 'num_classes': 8})
  got = ocp.PyTreeCheckpointer().restore(
      str(workdir / 'checkpoints' / '0' / 'state'))
  for key in ('params', 'batch_stats'):
    for a, b in zip(jax.tree.leaves(want[key]), jax.tree.leaves(got[key])):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  out = _launch('--mode=eval', f'--workdir={workdir}',
                *_model_flags(tiny_dataset))
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'CL' in out.stdout and os.path.exists(workdir / 'eval_0.json')

  # Converting into a workdir that already has checkpoints is refused.
  again = _launch('--mode=convert', f'--checkpoint={path}',
                  f'--workdir={workdir}', *_model_flags(tiny_dataset))
  assert again.returncode != 0 and 'already holds' in again.stderr


def test_parity_mode(tiny_dataset, tmp_path):
  factory = tmp_path / 'mirror_factory.py'
  factory.write_text(
      'import torch, torch_mirrors\n'
      'def make():\n'
      '  torch.manual_seed(1)\n'
      "  return torch_mirrors.build('baseline', 'tiny')\n")
  out = _launch('--mode=parity', '--torch_module=mirror_factory:make',
                '--workdir=unused', *_model_flags(tiny_dataset),
                extra_path=str(tmp_path))
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'embeddings' in out.stdout and 'logits' in out.stdout


def test_compile_mode_reports_memory(tiny_dataset):
  out = _launch('--mode=compile', '--workdir=unused',
                *_model_flags(tiny_dataset), '--config.data.p=4',
                '--config.data.k=2')
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'temporaries' in out.stdout and 'parameters' in out.stdout


def test_convert_needs_no_dataset(tmp_path):
  torch.manual_seed(0)
  path = tmp_path / 'opengait.pt'
  torch.save({'model': torch_mirrors.build('baseline', 'tiny').state_dict()},
             path)
  flags = _model_flags(str(tmp_path / 'no_such_dataset'))
  for classes in ('-1', '8'):  # From the checkpoint; checked against it.
    workdir = tmp_path / f'converted{classes}'
    out = _launch('--mode=convert', f'--checkpoint={path}',
                  f'--workdir={workdir}', *flags,
                  f'--config.model.num_classes={classes}')
    assert out.returncode == 0, out.stderr[-3000:]
    assert '8 classes' in out.stdout
    assert (workdir / 'config.json').exists()


def test_failed_convert_leaves_no_workdir(tmp_path):
  torch.manual_seed(0)
  path = tmp_path / 'gaitset.pt'
  torch.save(torch_mirrors.build('gaitset', 'tiny').state_dict(), path)
  workdir = tmp_path / 'converted'
  out = _launch('--mode=convert', f'--checkpoint={path}',
                f'--workdir={workdir}', *_model_flags(str(tmp_path)))
  assert out.returncode != 0
  assert not workdir.exists(), sorted(os.listdir(workdir))
