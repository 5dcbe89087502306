"""The code layout's rules: one builder recipe, a thin launcher, small modules.

These read the source tree; each rule names the files that break it.
"""

import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_MODULE_LINES = 400
MAX_LAUNCHER_LINES = 130


def _python_files(*tops):
  for top in tops:
    path = os.path.join(REPO, top)
    if path.endswith('.py'):
      yield path
      continue
    for root, dirs, files in os.walk(path):
      dirs[:] = [d for d in dirs if not d.startswith('.')]
      for name in files:
        if name.endswith('.py'):
          yield os.path.join(root, name)


def _rel(path):
  return os.path.relpath(path, REPO)


def _imports(path):
  """Top-level package names and full module names a file imports."""
  tree = ast.parse(open(path).read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module)
  return names


ALL = ('gait_jax', 'data_prep', 'benchmarks', 'scripts', 'tests', 'configs',
       'launch.py')


def test_no_library_module_is_over_the_size_limit():
  long = {_rel(p): n for p in _python_files('gait_jax')
          if (n := sum(1 for _ in open(p))) > MAX_MODULE_LINES}
  assert not long, f'modules over {MAX_MODULE_LINES} lines: {long}'


def test_launcher_is_thin_and_imported_by_nothing():
  lines = sum(1 for _ in open(os.path.join(REPO, 'launch.py')))
  assert lines <= MAX_LAUNCHER_LINES
  importers = [_rel(p) for p in _python_files(*ALL)
               if 'launch' in _imports(p)]
  assert not importers, f'launch.py is imported by {importers}'


def test_library_does_not_import_data_prep():
  offenders = [_rel(p) for p in _python_files('gait_jax')
               if any(n == 'data_prep' or n.startswith('data_prep.')
                      for n in _imports(p))]
  assert not offenders, f'gait_jax modules importing data_prep: {offenders}'


def test_the_builder_recipe_exists_once():
  # Calls (not definitions) of the recipe's steps, outside the experiment
  # module and the unit tests of the functions themselves.
  allowed = {'gait_jax/experiment.py', 'tests/test_optim.py',
             'tests/test_layout.py'}
  # (The PyTorch side of the parity tools has its own make_optimizer.)
  pattern = re.compile(
      r'(?<!def )(?<!torch_optim\.)\b(make_optimizer|shard_step)\(')
  offenders = [
      _rel(p) for p in _python_files(*ALL)
      if _rel(p) not in allowed and pattern.search(open(p).read())]
  assert not offenders, f'the recipe is written out again in {offenders}'
