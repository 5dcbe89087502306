"""Two processes × 2 CPU devices train and evaluate exactly like one process
× 4 devices; in evaluation each process reads only its devices' sequences."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _command(dataset_dir, workdir, *extra):
  return [sys.executable, os.path.join(REPO, 'launch.py'),
          '--config=configs/synthetic_demo.py', f'--workdir={workdir}',
          '--config.data.source=tfds', f'--config.data.dataset_dir={dataset_dir}',
          '--config.data.p=4', '--config.data.k=2',
          '--config.data.num_frames=6', f'--config.train.num_steps={STEPS}',
          '--config.train.log_every=1', '--config.train.eval_at_end=True',
          '--config.eval.batch_size=8', '--verbosity=0',
          # SGD, not the demo's Adam: Adam divides each gradient by its own
          # magnitude, so parameters whose gradients are near its eps move by
          # up to lr on float32 summation-order noise (1e-9) alone; with SGD
          # parameter differences stay proportional to gradient differences
          # and the comparison below can be tight.
          '--config.optim.name=sgd', '--config.optim.lr=0.1',
          '--config.optim.momentum=0.9',
          *extra]


def _env(devices: int) -> dict:
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES=str(devices),
             JAX_CPU_COLLECTIVES_IMPLEMENTATION='gloo')
  return env


def _final_params(workdir):
  path = os.path.join(workdir, 'checkpoints', str(STEPS), 'state')
  checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
  meta = checkpointer.metadata(path)
  tree = (meta.item_metadata.tree if getattr(meta, 'item_metadata', None)
          is not None else meta.tree)
  # As host NumPy arrays: the saving topology (2 processes) is not ours.
  as_numpy = jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  restored = checkpointer.restore(
      path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  return jax.tree.leaves(restored['params'])


def test_two_processes_equal_one(tiny_dataset, tmp_path):
  single = subprocess.run(_command(tiny_dataset, tmp_path / 'one'),
                          env=_env(4), cwd=REPO, capture_output=True,
                          text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]

  port = _free_port()
  procs = [
      subprocess.Popen(
          _command(tiny_dataset, tmp_path / 'two',
                   f'--coordinator_address=127.0.0.1:{port}',
                   '--num_processes=2', f'--process_id={i}'),
          env=_env(2), cwd=REPO, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert 'process 0 of 2' in outs[0][0] and 'process 1 of 2' in outs[1][0]

  # The same losses at every step (process 0 writes the metrics).
  losses = [[json.loads(line)['loss/total']
             for line in open(tmp_path / run / 'metrics.jsonl')]
            for run in ('one', 'two')]
  assert len(losses[0]) == STEPS
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
  want, got = _final_params(tmp_path / 'one'), _final_params(tmp_path / 'two')
  assert len(want) == len(got) > 0
  for a, b in zip(want, got):
    # Cross-process all-reduces (gloo) and each process's convolutions sum in
    # another order than one process's: equal up to float32 rounding.
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)

  # The final evaluation: the same scores, and each of the two processes
  # read only the sequences of its own devices' rows (the test split's 80
  # sequences, not all of them each).
  reports = [json.load(open(tmp_path / run / 'eval_latest.json'))
             for run in ('one', 'two')]
  assert reports[0]['summary'] and reports[0]['step'] == STEPS
  for key, value in reports[0]['summary'].items():
    np.testing.assert_allclose(reports[1]['summary'][key], value, atol=1e-6)
  read = [_read_count(err) for _, err in outs]
  assert read[0] + read[1] == 80 and 0 < read[0] < 80, read
  assert _read_count(single.stderr) == 80


def _read_count(log: str) -> int:
  lines = [l for l in log.splitlines() if 'Embedded ' in l]
  assert len(lines) == 1, log[-3000:]
  return int(lines[0].split(' read ')[1].split()[0])
