"""benchmarks/protocol_bench.py --quick: every protocol runs at tiny sizes,
in process and (one protocol) in its own subprocess."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..',
                                'benchmarks'))
import protocol_bench  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_quick_in_process_covers_every_protocol(capsys):
  rows = protocol_bench.main(['--quick', '--in_process', '--parts=2',
                              '--channels=8'])
  assert [r['protocol'] for r in rows] == list(protocol_bench.ALL)
  for r in rows:
    assert r['seconds'] > 0 and r['rss_peak_mib'] >= r['rss_before_mib'] > 0
    assert r['summary']
  out = capsys.readouterr().out
  assert out.count('\n| ') == len(rows) + 1  # header + one row each
  assert next(r for r in rows if r['protocol'] == 'grew_submission')[
      'summary'] == {'rows': 6}


def test_quick_subprocess_worker(tmp_path):
  out = tmp_path / 'rows.json'
  (row,) = protocol_bench.main(['--quick', '--protocols=gait3d', '--parts=2',
                                '--channels=8', f'--json={out}'])
  assert row['protocol'] == 'gait3d' and row['sequences'] > 8
  assert set(row['summary']) == {'rank-1', 'rank-5'}
  assert out.exists()
