"""The training loop: resume, SIGTERM, bad input, and a tiny end-to-end run."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from gait_jax import checkpoint as ckpt_lib
from gait_jax import train
from train_utils import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def _assert_same(a, b):
  for x, y in zip(_params(a), _params(b)):
    np.testing.assert_array_equal(x, y)


def test_resume_equals_uninterrupted(tiny_dataset, tmp_path):
  straight = train.train(tiny_config(tiny_dataset, steps=4),
                         str(tmp_path / 'a'))
  # N steps, a fresh process-like restart, N more steps.
  first = train.train(tiny_config(tiny_dataset, steps=2), str(tmp_path / 'b'))
  resumed = train.train(tiny_config(tiny_dataset, steps=4),
                        str(tmp_path / 'b'))
  assert int(first.step) == 2 and int(resumed.step) == 4
  _assert_same(straight, resumed)
  # The run really moved between step 2 and step 4.
  assert any(np.abs(x - y).max() > 0
             for x, y in zip(_params(first), _params(resumed)))
  rows = [json.loads(l) for l in open(tmp_path / 'b' / 'metrics.jsonl')]
  assert [r['step'] for r in rows] == [1, 2, 3, 4]
  # Reproducibility: the same config gives the same loss curve, run to run.
  straight_rows = [json.loads(l) for l in open(tmp_path / 'a' /
                                                'metrics.jsonl')]
  curve = lambda rs: [(r['loss/total'], r['triplet/nonzero']) for r in rs]
  assert curve(rows) == curve(straight_rows)
  assert len(set(curve(rows))) > 1  # The loss does change along the run.


def test_sigterm_saves_and_resume_completes(tiny_dataset, tmp_path):
  config = tiny_config(tiny_dataset, steps=8)
  workdir = str(tmp_path / 'w')
  metrics = os.path.join(workdir, 'metrics.jsonl')

  def send_sigterm():
    deadline = time.time() + 120
    while not os.path.exists(metrics) and time.time() < deadline:
      time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

  killer = threading.Thread(target=send_sigterm)
  killer.start()
  stopped = train.train(config, workdir)
  killer.join()
  stopped_at = int(stopped.step)
  assert 1 <= stopped_at < 8
  assert ckpt_lib.Checkpointer(workdir).latest_step() == stopped_at
  resumed = train.train(config, workdir)
  straight = train.train(config, str(tmp_path / 'straight'))
  assert int(resumed.step) == 8
  _assert_same(straight, resumed)


def test_p_larger_than_training_subjects(tiny_dataset, tmp_path):
  config = tiny_config(tiny_dataset)
  with config.unlocked():
    config.data.p = 8
  with pytest.raises(ValueError, match=r'data\.p=8.*only 6 subjects'):
    train.train(config, str(tmp_path))


def test_workdir_of_another_model_is_refused(tiny_dataset, tmp_path):
  train.train(tiny_config(tiny_dataset, steps=2), str(tmp_path))
  other = tiny_config(tiny_dataset, model='gaitpart', steps=4)
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match="'gaitset'.*'gaitpart'"):
    train.train(other, str(tmp_path))


def _launch(*args, timeout=600):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch.py'), *args],
      capture_output=True, text=True, timeout=timeout, cwd=REPO,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))


def test_config_key_typo_is_named():
  out = _launch('--config=configs/synthetic_demo.py', '--workdir=/tmp/unused',
                '--config.optim.lrr=0.1')
  assert out.returncode != 0
  assert 'lrr' in out.stderr and 'lr' in out.stderr


def test_end_to_end_launch(tiny_dataset, tmp_path):
  common = ['--config=configs/synthetic_demo.py', f'--workdir={tmp_path}',
            '--config.data.source=tfds',
            f'--config.data.dataset_dir={tiny_dataset}',
            '--config.data.p=4', '--config.data.k=2',
            '--config.data.num_frames=6', '--config.train.num_steps=3',
            '--config.train.log_every=1', '--config.eval.buckets=(8,16)']
  out = _launch(*common)
  assert out.returncode == 0, out.stderr[-3000:]
  for name in ('NM', 'BG', 'CL'):
    assert name in out.stdout
  report = json.load(open(tmp_path / 'eval_latest.json'))
  assert report['step'] == 3
  assert set(report['summary']) >= {'NM', 'BG', 'CL'}
  assert all(0 <= v <= 100 for v in report['summary'].values())
  for png in ('rank1_NM.png', 'rank1_BG.png', 'rank1_CL.png', 'tsne.png'):
    assert os.path.getsize(tmp_path / png) > 1000
  # --mode=eval restores the checkpoint and reproduces the same numbers.
  again = _launch(*common, '--mode=eval')
  assert again.returncode == 0, again.stderr[-3000:]
  assert json.load(open(tmp_path / 'eval_latest.json'))['summary'] == (
      report['summary'])


def test_sigterm_exit_status_names_an_early_stop(tiny_dataset, tmp_path):
  from gait_jax import commands  # pylint: disable=g-import-not-at-top
  args = [sys.executable, os.path.join(REPO, 'launch.py'),
          '--config=configs/synthetic_demo.py', f'--workdir={tmp_path}',
          '--config.data.source=tfds',
          f'--config.data.dataset_dir={tiny_dataset}',
          '--config.data.p=4', '--config.data.k=2',
          '--config.data.num_frames=6', '--config.train.num_steps=100000',
          '--config.train.log_every=1', '--config.train.ckpt_every=100000']
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'))
  metrics = tmp_path / 'metrics.jsonl'
  deadline = time.time() + 300
  # After the first logged step the SIGTERM handler is installed.
  while time.time() < deadline and not (
      metrics.exists() and metrics.read_text().strip()):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == commands.EXIT_PREEMPTED, err[-3000:]
  assert 'run the same command again to resume' in out
  saved = ckpt_lib.Checkpointer(str(tmp_path)).latest_step()
  assert saved is not None and saved >= 1


def test_damaged_latest_checkpoint_resumes_from_the_previous(tiny_dataset,
                                                             tmp_path):
  straight = train.train(tiny_config(tiny_dataset, steps=4),
                         str(tmp_path / 'a'))
  workdir = tmp_path / 'b'
  train.train(tiny_config(tiny_dataset, steps=4), str(workdir))
  # Garble the largest data file of step 4's state.
  files = [p for p in (workdir / 'checkpoints' / '4' / 'state').rglob('*')
           if p.is_file()]
  target = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(target.read_bytes())
  mid = len(data) // 2
  data[mid:mid + 64] = bytes(64)
  target.write_bytes(bytes(data))
  resumed = train.train(tiny_config(tiny_dataset, steps=4), str(workdir))
  assert int(resumed.step) == 4
  _assert_same(straight, resumed)  # Steps 3 and 4 were redone from step 2.
  assert (workdir / 'checkpoints_damaged' / '4').is_dir()  # Kept aside.
  rows = [json.loads(l) for l in open(workdir / 'metrics.jsonl')]
  assert [r['step'] for r in rows] == [1, 2, 3, 4]


def test_workdir_of_another_optimizer_is_refused(tiny_dataset, tmp_path):
  train.train(tiny_config(tiny_dataset, steps=2), str(tmp_path))
  other = tiny_config(tiny_dataset, steps=4)
  with other.unlocked():
    other.optim.name = 'adam'
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"optim\.name: 'sgd' \(checkpoint\) vs 'adam'"):
    train.train(other, str(tmp_path))
