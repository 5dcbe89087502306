"""scripts/readme_demo.py: the demo log's table against the README's."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))

import readme_demo  # pylint: disable=g-import-not-at-top,wrong-import-position


def _log(rows):
  return ('train: 100%|####| 300/300\rembed: 100%\n'
          + '\n'.join(rows) + '\nReport: /w/eval_300.json\n')


def test_the_readme_block_is_what_the_script_compares():
  readme = open(readme_demo.README).read()
  start, end = readme_demo.readme_block(readme)
  block = readme.split('\n')[start:end]
  assert block[0].startswith(readme_demo.HEAD) and len(block) >= 5
  # The README's own block, printed in a log, compares equal.
  assert readme_demo.table_of_log(_log(block)) == block


def test_a_changed_number_is_reported_and_updated(tmp_path, monkeypatch):
  readme = tmp_path / 'README.md'
  readme.write_text('intro\n```\ncasia_b: rank-1 (%)\n  NM  90.00\n```\nend\n')
  monkeypatch.setattr(readme_demo, 'README', str(readme))
  log = tmp_path / 'demo.log'
  log.write_text(_log(['casia_b: rank-1 (%)', '  NM  91.00']))
  monkeypatch.setattr(sys, 'argv', ['readme_demo.py', str(log)])
  readme_demo.main()
  assert '90.00' in readme.read_text()  # Only reported.
  monkeypatch.setattr(sys, 'argv', ['readme_demo.py', str(log), '--update'])
  readme_demo.main()
  assert readme.read_text() == (
      'intro\n```\ncasia_b: rank-1 (%)\n  NM  91.00\n```\nend\n')


def test_a_log_without_a_table_is_an_error(tmp_path):
  log = tmp_path / 'demo.log'
  log.write_text('Traceback ...\n')
  out = subprocess.run([sys.executable, os.path.join(REPO, 'scripts',
                                                     'readme_demo.py'),
                        str(log)], capture_output=True, text=True)
  assert out.returncode != 0 and 'did the demo finish' in out.stderr
