"""The work of each ``launch.py --mode``: train, eval, compile, convert, parity.

Each function takes a locked config (and the mode's own arguments), does the
whole job and returns the process exit status; ``launch.py`` only parses the
flags and dispatches. Datasets are prepared by the caller
(``data_prep.prepare.prepare_dataset``) for the modes that read data.
"""

from __future__ import annotations

import importlib
import os

import jax

from gait_jax import evaluation
from gait_jax import experiment

# Exit status of a run stopped early by SIGTERM after saving a checkpoint
# (EX_TEMPFAIL: run the same command again to resume).
EXIT_PREEMPTED = 75


def write_config(config, workdir: str) -> str:
  """Writes ``config.json`` into ``workdir``; returns its path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'config.json')
  with open(path, 'w') as f:
    f.write(config.to_json_best_effort(indent=1))
  return path


def run_train(config, workdir: str) -> int:
  """Trains (resuming from ``workdir``), then evaluates if
  ``train.eval_at_end``.

  Returns:
    0 when training finished; ``EXIT_PREEMPTED`` when SIGTERM stopped it
    after saving a checkpoint.
  """
  from gait_jax import train  # pylint: disable=g-import-not-at-top
  write_config(config, workdir)
  state = train.train(config, workdir)
  if int(state.step) < config.train.num_steps:
    print(f'Stopped at step {int(state.step)} (SIGTERM); run the same '
          f'command again to resume (exit status {EXIT_PREEMPTED}).',
          flush=True)
    return EXIT_PREEMPTED
  if config.train.eval_at_end:
    model = experiment.build_model(config, experiment.num_classes(config))
    evaluator = evaluation.Evaluator(config, model,
                                     experiment.make_mesh(config), workdir)
    evaluator.run(int(state.step), {'params': state.params,
                                    'batch_stats': state.batch_stats},
                  final=True)
  return 0


def run_eval(config, workdir: str) -> int:
  """Evaluates the newest checkpoint of ``workdir`` that restores."""
  mesh = experiment.make_mesh(config)
  model, variables, step = experiment.restore_variables(config, workdir,
                                                        mesh=mesh)
  evaluation.Evaluator(config, model, mesh, workdir).run(step, variables,
                                                         final=True)
  return 0


def run_robustness(config, workdir: str, *, side: str = 'probe',
                   names=None, severities=(1, 2, 3, 4, 5), seed: int = 0,
                   out_dir: str | None = None) -> int:
  """Scores the newest checkpoint of ``workdir`` clean and under every
  corruption × severity (``evaluation.robustness``) and writes the table,
  JSON and heatmap to ``out_dir`` (default ``<workdir>/robustness``)."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  from gait_jax.evaluation import robustness  # pylint: disable=g-import-not-at-top
  robustness.check_side(side)
  mesh = experiment.make_mesh(config)
  model, variables, step = experiment.restore_variables(config, workdir,
                                                        mesh=mesh)
  evaluator = evaluation.Evaluator(config, model, mesh, workdir)
  names = list(names or robustness.corruptions.CORRUPTIONS)
  with tqdm(total=len(names) * len(severities), desc='corruptions',
            unit='cell', disable=jax.process_index() != 0) as bar:
    table = robustness.evaluate(evaluator, variables, side=side, names=names,
                                severities=severities, seed=seed, bar=bar)
  if jax.process_index() == 0:
    paths = robustness.write(table, out_dir or os.path.join(workdir,
                                                            'robustness'))
    print(f'Checkpoint step {step}.')
    print(table.format_table())
    for path in paths:
      print(f'Wrote: {path}')
  return 0


def run_compile(config) -> int:
  """Compiles the train step for the config's mesh and prints its memory."""
  from gait_jax import aot  # pylint: disable=g-import-not-at-top
  report = aot.compile_train_step(config, experiment.num_classes(config))
  print(report.format(), flush=True)
  return 0


def run_convert(config, workdir: str, checkpoint: str,
                bnneck_layout: str = 'channel_major') -> int:
  """OpenGait checkpoint → step-0 orbax checkpoint of ``config.model``.

  The class count is the config's, else the checkpoint's (no dataset is
  read). Nothing is written to ``workdir`` unless the conversion succeeds.

  Raises:
    FileExistsError: ``workdir`` already holds checkpoints.
  """
  from gait_jax import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(ckpt_dir) and any(
      name.isdigit() for name in os.listdir(ckpt_dir)):
    raise FileExistsError(f'{os.path.abspath(ckpt_dir)} already holds '
                          'checkpoints; convert into a new --workdir.')
  state_dict = torch_compat.read_state_dict(checkpoint)
  num_classes = experiment.num_classes(config, checkpoint=state_dict)
  kwargs = dict(config.model.to_dict(), num_classes=num_classes)
  name = kwargs.pop('name')
  variables = torch_compat.load_opengait_checkpoint(
      state_dict, name, kwargs, bnneck_layout=bnneck_layout)
  state = experiment.state_from_variables(config, num_classes, variables)
  meta = experiment.checkpoint_meta(config, num_classes)
  meta['converted_from'] = os.path.abspath(checkpoint)
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False)
  checkpointer.save(0, state, meta, force=True)
  checkpointer.close()
  write_config(config, workdir)
  print(f'Converted {checkpoint} ({name}, {num_classes} classes) to '
        f'{checkpointer.directory}/0', flush=True)
  return 0


def load_torch_factory(spec: str):
  """Calls ``package.module:factory`` and returns the PyTorch module.

  Raises:
    ValueError: ``spec`` is not of that form.
  """
  if ':' not in spec:
    raise ValueError(f'--torch_module={spec!r}: expected '
                     'package.module:factory.')
  module_name, factory = spec.split(':', 1)
  module = importlib.import_module(module_name)
  if not hasattr(module, factory):
    raise ValueError(f'--torch_module={spec!r}: {module_name} has no '
                     f'attribute {factory!r}.')
  return getattr(module, factory)()


def run_parity(config, torch_module: str, checkpoint: str | None = None,
               bnneck_layout: str = 'channel_major') -> int:
  """Prints the PyTorch-vs-Flax parity report of ``torch_module``'s model
  (loaded with ``checkpoint`` if given), in eval and train mode."""
  from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
  module = load_torch_factory(torch_module)
  if checkpoint:
    import torch  # pylint: disable=g-import-not-at-top
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    module.load_state_dict(state.get('model', state))
  kwargs = config.model.to_dict()
  name = kwargs.pop('name')
  # num_classes=-1: the PyTorch model's classifier size.
  for train_mode in (False, True):
    report = torch_compat.parity_report(
        module, name, kwargs, frames=config.data.num_frames,
        train=train_mode, bnneck_layout=bnneck_layout)
    if jax.process_index() == 0:
      print(torch_compat.format_parity_report(report), flush=True)
  return 0


def run_parity_train(config, workdir: str, torch_module: str, steps: int,
                     bnneck_layout: str = 'channel_major') -> int:
  """Trains ``torch_module``'s model and its converted Flax twin for
  ``steps`` steps on the same batches, prints the per-step table and writes
  ``parity_train.json`` to ``workdir`` (see
  ``torch_compat.train_parity_report``)."""
  import json  # pylint: disable=g-import-not-at-top
  from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
  module = load_torch_factory(torch_module)
  report = torch_compat.train_parity_report(config, module, steps,
                                     bnneck_layout=bnneck_layout)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'parity_train.json')
  with open(path, 'w') as f:
    json.dump(report, f, indent=1)
  write_config(config, workdir)
  print(f'Wrote {path}', flush=True)
  return 0
