"""Keeps the README's example table equal to what ``make demo`` prints.

``make demo`` saves its output to ``<workdir>/demo.log`` and runs

  python scripts/readme_demo.py workdirs/synthetic_demo/demo.log

which compares the evaluation table in the log (from the ``casia_b: rank-1``
line to the line that counts probes without a true match) with the first
code block of the README that starts the same way, and says whether they are
equal. ``--update`` writes the log's table into the README.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')
HEAD = 'casia_b: rank-1'


def table_of_log(text: str) -> list[str]:
  """The evaluation table printed in a demo log.

  Raises:
    ValueError: the log holds no table.
  """
  lines = [l.rstrip() for l in text.replace('\r', '\n').split('\n')]
  starts = [i for i, l in enumerate(lines) if l.startswith(HEAD)]
  if not starts:
    raise ValueError(f'no line starting with {HEAD!r} in the log: did the '
                     'demo finish?')
  block = []
  for line in lines[starts[-1]:]:
    if not line or line.startswith('Report:'):
      break
    block.append(line)
  return block


def readme_block(readme: str) -> tuple[int, int]:
  """Line range [start, end) of the README's example table code block.

  Raises:
    ValueError: the README has no such block.
  """
  lines = readme.split('\n')
  for i, line in enumerate(lines):
    if line.startswith(HEAD) and i > 0 and lines[i - 1] == '```':
      end = lines.index('```', i)
      return i, end
  raise ValueError(f'README.md has no code block starting with {HEAD!r}.')


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('log', help='The output of the demo run.')
  parser.add_argument('--update', action='store_true',
                      help='Write the table of the log into README.md.')
  args = parser.parse_args()
  with open(args.log) as f:
    table = table_of_log(f.read())
  with open(README) as f:
    readme = f.read()
  start, end = readme_block(readme)
  lines = readme.split('\n')
  if lines[start:end] == table:
    print('README.md example table: equal to this run.')
    return 0
  if args.update:
    lines[start:end] = table
    with open(README, 'w') as f:
      f.write('\n'.join(lines))
    print('README.md example table: updated to this run.')
    return 0
  diff = difflib.unified_diff(lines[start:end], table, 'README.md', args.log,
                              lineterm='')
  print('README.md example table differs from this run (a changed config or '
        'code, or another machine):\n' + '\n'.join(diff) + '\nRun `python '
        f'scripts/readme_demo.py {args.log} --update` to record it.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
