"""Checkpoints: fallback past damaged steps, the resume guard; metrics rows."""

import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gait_jax import checkpoint as ckpt_lib
from gait_jax.metric_writer import MetricWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = {'name': 'gaitset', 'variant': 'casia_b', 'num_classes': 6}
OPTIM = {'name': 'adam', 'lr': 1e-3, 'weight_decay': 0.0, 'momentum': 0.9,
         'nesterov': False, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-8}
SCHEDULE = {'name': 'multistep', 'milestones': [250], 'gamma': 0.1}
META = {'model': MODEL, 'optim': OPTIM, 'schedule': SCHEDULE,
        'loss_preset': 'triplet'}


def _state(scale: float = 1.0):
  params = {'a': jnp.full((4, 3), scale), 'b': {'c': jnp.arange(5.0) * scale}}
  return {'params': params, 'opt_state': optax.adam(1e-3).init(params),
          'step': jnp.int32(0)}


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> str:
  """A workdir with steps 1, 2, 3 (params scaled by the step)."""
  workdir = str(tmp_path_factory.mktemp('pristine'))
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    for step in (1, 2, 3):
      checkpointer.save(step, _state(step), META, force=True)
  return workdir


@pytest.fixture
def workdir(pristine, tmp_path) -> str:
  path = str(tmp_path / 'w')
  shutil.copytree(pristine, path)
  return path


def _step_dir(workdir: str, step: int) -> str:
  return os.path.join(workdir, 'checkpoints', str(step))


def _data_files(workdir: str, step: int) -> list[str]:
  """The OCDBT data files the step's tree is read from."""
  files = sorted(glob.glob(os.path.join(_step_dir(workdir, step), 'state',
                                        'd', '*')))
  assert files
  return files


def _garble(path: str) -> None:
  data = bytearray(open(path, 'rb').read())
  for i in range(len(data) // 2, len(data)):
    data[i] ^= 0x5A
  open(path, 'wb').write(bytes(data))


def _damage(workdir: str, step: int, how: str) -> str:
  """Damages ``step``; returns the path the warning must name."""
  if how == 'garble':
    for path in _data_files(workdir, step):
      _garble(path)
    return os.path.basename(_data_files(workdir, step)[0])
  if how == 'truncate':
    for path in _data_files(workdir, step):
      os.truncate(path, 100)
    return os.path.basename(_data_files(workdir, step)[0])
  if how == 'no_metadata':
    path = os.path.join(_step_dir(workdir, step), 'state', '_METADATA')
    os.remove(path)
    return path
  if how == 'meta':
    with open(os.path.join(_step_dir(workdir, step), 'meta', 'metadata'),
              'w') as f:
      f.write('{"model": ')
    return os.path.join(_step_dir(workdir, step), 'meta')
  raise ValueError(how)


def _warnings(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records
          if r.levelno >= logging.WARNING]


@pytest.mark.parametrize('how', ['garble', 'truncate', 'no_metadata', 'meta'])
def test_damaged_latest_falls_back_and_is_set_aside(workdir, how, caplog):
  named = _damage(workdir, 3, how)
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    with caplog.at_level(logging.WARNING):
      state, step = checkpointer.restore_latest(_state(), META)
    assert step == 2
    np.testing.assert_array_equal(state['params']['a'], np.full((4, 3), 2.0))
    assert checkpointer.latest_step() == 2
  messages = _warnings(caplog)
  assert len(messages) == 2, messages
  assert 'step 3' in messages[0] and named in messages[0]
  assert 'trying step 2' in messages[0]
  assert 'Traceback' not in messages[0]
  # Kept on disk, out of the way of later saves.
  assert os.path.isdir(os.path.join(workdir, ckpt_lib.DAMAGED_DIR, '3'))
  assert not os.path.exists(_step_dir(workdir, 3))


def test_all_damaged_is_one_error_listing_the_steps(workdir):
  for step in (1, 2, 3):
    _damage(workdir, step, 'garble')
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    with pytest.raises(ckpt_lib.CheckpointRestoreError) as err:
      checkpointer.restore_latest(_state(), META)
  assert list(err.value.failures) == [3, 2, 1]
  for step in (1, 2, 3):
    assert f'step {step}: state ' in str(err.value)
    assert os.path.isdir(_step_dir(workdir, step))  # Nothing moved.


def test_saving_after_a_fallback(tmp_path):
  workdir = str(tmp_path)
  with ckpt_lib.Checkpointer(workdir, max_to_keep=2) as checkpointer:
    for step in (1, 2, 3):
      checkpointer.save(step, _state(step), META, force=True)
  _damage(workdir, 3, 'garble')
  with ckpt_lib.Checkpointer(workdir, max_to_keep=2) as checkpointer:
    assert checkpointer.restore_latest(_state(), META)[1] == 2
    # The redone step 3 and then 4 save; the good step 2 is only deleted by
    # max_to_keep once two newer good checkpoints exist.
    checkpointer.save(3, _state(30), META, force=True)
    checkpointer.wait()
    assert checkpointer.all_steps() == [2, 3]
    checkpointer.save(4, _state(4), META, force=True)
  with ckpt_lib.Checkpointer(workdir, max_to_keep=2) as checkpointer:
    state, step = checkpointer.restore_latest(_state(), META)
    assert step == 4 and checkpointer.all_steps() == [3, 4]
  np.testing.assert_array_equal(state['params']['a'], np.full((4, 3), 4.0))
  assert os.path.isdir(os.path.join(workdir, ckpt_lib.DAMAGED_DIR, '3'))


def test_another_optimizer_is_refused_naming_the_field(workdir):
  other = dict(META, optim=dict(OPTIM, name='sgd'))
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    with pytest.raises(ckpt_lib.CheckpointMismatchError,
                       match=r"optim\.name: 'adam' \(checkpoint\) vs 'sgd' "
                             r'\(config\)'):
      checkpointer.restore_latest(_state(), other)
  assert os.path.isdir(_step_dir(workdir, 3))  # A mismatch is no damage.


def test_other_state_tree_is_refused_not_taken_for_damage(workdir):
  target = _state()
  target['params']['extra'] = jnp.zeros(2)
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    with pytest.raises(ckpt_lib.CheckpointMismatchError,
                       match=r'not in the checkpoint: params\.extra'):
      checkpointer.restore_latest(target, META)
  assert os.path.isdir(_step_dir(workdir, 3))


def test_changed_hyper_parameters_warn_and_resume(workdir, caplog):
  lower = dict(META, optim=dict(OPTIM, lr=1e-4),
               model=dict(MODEL, ops='cpu'))
  with ckpt_lib.Checkpointer(workdir) as checkpointer:
    with caplog.at_level(logging.WARNING):
      assert checkpointer.restore_latest(_state(), lower)[1] == 3
  (message,) = _warnings(caplog)
  assert 'optim.lr: 0.001 (checkpoint) vs 0.0001 (config)' in message
  assert 'ops' not in message


def test_check_meta_rule():
  sgd = dict(OPTIM, name='sgd')
  refused, tolerated = ckpt_lib.check_meta(
      dict(META, optim=sgd),
      dict(META, optim=dict(sgd, momentum=0.0, nesterov=True),
           schedule=dict(SCHEDULE, milestones=[100])))
  assert [r.split(':')[0] for r in refused] == ['optim.momentum']
  assert [t.split(':')[0] for t in tolerated] == [
      'optim.nesterov', 'schedule.milestones']
  # The model must match; a checkpoint without optim/schedule is compared on
  # what it has.
  refused, tolerated = ckpt_lib.check_meta(
      {'model': MODEL}, dict(META, model=dict(MODEL, num_classes=7)))
  assert refused == ['model.num_classes: 6 (checkpoint) vs 7 (config)']
  assert not tolerated


def test_empty_workdir_restores_nothing(tmp_path):
  with ckpt_lib.Checkpointer(str(tmp_path)) as checkpointer:
    assert checkpointer.restore_latest(_state(), META) is None


def test_metrics_rows_after_the_resumed_step_are_dropped(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  rows = [{'step': s, 'loss': float(s)} for s in (1, 2, 3, 4)]
  rows.insert(3, {'step': 3, 'eval/NM': 50.0})
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"step": 5')
  writer = MetricWriter(str(tmp_path), start_step=2)
  for step in (3, 4):
    writer.write_scalars(step, {'loss': 10.0 + step})
  writer.close()
  got = [json.loads(line) for line in path.read_text().splitlines()]
  assert [r['step'] for r in got] == [1, 2, 3, 4]
  assert [r['loss'] for r in got] == [1.0, 2.0, 13.0, 14.0]
  assert not os.path.exists(f'{path}.tmp')


_NOISE_SCRIPT = textwrap.dedent('''
    import os, sys
    import jax, jax.numpy as jnp, optax
    from gait_jax import checkpoint as ckpt_lib
    # Many arrays: one failed read leaves many in flight (the noise's cause).
    params = {f'w{i}': jax.random.normal(jax.random.key(i), (32, 128))
              for i in range(100)}
    state = {'params': params, 'opt_state': optax.adam(1e-3).init(params)}
    checkpointer = ckpt_lib.Checkpointer(sys.argv[1])
    for step in (1, 2):
      checkpointer.save(step, state, {}, force=True)
    checkpointer.close()
    for path, _, names in os.walk(sys.argv[1]):
      for name in names:
        if os.sep + 'd' == path[-2:] and os.path.getsize(
            os.path.join(path, name)) > 1000:
          os.truncate(os.path.join(path, name), 1000)  # The array data.
    checkpointer = ckpt_lib.Checkpointer(sys.argv[1])
    checkpointer.restore_latest(state)  # Raises; the manager is not closed.
''')


def test_failed_restore_exits_without_shutdown_noise(tmp_path):
  out = subprocess.run(
      [sys.executable, '-c', _NOISE_SCRIPT, str(tmp_path)],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert out.returncode == 1
  assert 'CheckpointRestoreError: No checkpoint in' in out.stderr
  assert 'step 2: state' in out.stderr and 'step 1: state' in out.stderr
  for noise in ('Event loop is closed', 'sys.meta_path is None'):
    assert noise not in out.stderr, out.stderr[-3000:]
