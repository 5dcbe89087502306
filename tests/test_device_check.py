"""benchmarks/device_check.py --dry_run: the device check's code runs.

The dry run is the accelerator command at tiny sizes on the CPU. Compiling
each model's train step and two eval programs costs tens of seconds on two
CPU cores, so this test runs one model (Baseline) end to end; the other
models' train and eval programs are covered by tests/test_export.py.
"""

import json
import os
import sys

import jax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..',
                                'benchmarks'))
import device_check  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_dry_run_writes_the_report(tmp_path):
  out = str(tmp_path / 'device_check.json')
  report = device_check.main(['--dry_run', '--models=baseline',
                              f'--out={out}'])
  with open(out) as f:
    assert json.load(f)['models'].keys() == report['models'].keys()
  entry = report['models']['baseline']
  train = entry['train']
  assert train['batch'] == '2x2x6'
  assert train['devices'] == len(jax.devices())
  assert train['jax_step_s'] > 0 and train['torch_step_s'] > 0
  assert train['jax_loss'] == train['jax_loss']  # Not NaN.
  memory = train['memory_bytes']
  assert memory['predicted_peak'] > memory['argument'] > 0
  if jax.devices()[0].platform == 'cpu':  # The CPU reports no memory stats.
    assert memory['measured_peak'] == -1
  assert entry['eval']['sequences'] == 4
  assert entry['eval']['batched_seq_per_s'] > 0
