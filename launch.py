"""gait_jax command line: train, evaluate, and more, from a config file.

  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo
  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo \
      --mode=eval
  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo \
      --config.optim.lr=0.05

Modes:
  train  trains (resuming from --workdir), evaluating every
         config.train.eval_every steps (0 = never), then evaluates if
         config.train.eval_at_end.
  eval   evaluates the latest checkpoint of --workdir.
  compile  lowers and compiles the train step for the config and the visible
         devices and prints the memory it needs; reads no data.
  convert  converts an OpenGait checkpoint (--checkpoint=file.pt) of
         config.model into an orbax checkpoint in --workdir, which
         --mode=eval then evaluates (and --mode=train fine-tunes).
  parity  runs a PyTorch module (--torch_module=package.module:factory,
         optionally loaded with --checkpoint) and its converted Flax twin on
         the same deterministic input and prints the max abs/rel differences
         of embeddings and logits.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gait_jax import parallel

MODES = ('train', 'eval', 'compile', 'convert', 'parity')

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (e.g. configs/synthetic_demo.py).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.')
_MODE = flags.DEFINE_enum('mode', 'train', MODES, 'What to do.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'convert/parity: an OpenGait .pt checkpoint.')
_BNNECK_LAYOUT = flags.DEFINE_enum(
    'bnneck_layout', 'channel_major', ('channel_major', 'part_major'),
    'convert/parity: BNNeck layout of the checkpoint (part_major for '
    'checkpoints written before mid-2022).')
_TORCH_MODULE = flags.DEFINE_string(
    'torch_module', None, 'parity: package.module:factory returning the '
    'PyTorch model (called with no arguments).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host: host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'Multi-host: index of this process.')


def prepare_dataset(config) -> str:
  """Sets ``config.data.dataset_dir`` (building the synthetic data if needed).

  Returns:
    The dataset directory.
  """
  if config.data.source == 'synthetic':
    from data_prep.synthetic import dataset as synthetic  # pylint: disable=g-import-not-at-top
    cfg = synthetic.SyntheticConfig(**config.data.synthetic.to_dict())
    config.data.dataset_dir = synthetic.build_synthetic_dataset(
        config.data.data_dir, cfg)
  elif config.data.source != 'tfds':
    raise ValueError(f"data.source={config.data.source!r}; valid: 'tfds', "
                     "'synthetic'.")
  if not os.path.isdir(config.data.dataset_dir):
    raise FileNotFoundError(
        f'data.dataset_dir={config.data.dataset_dir!r} does not exist. Convert '
        'a dataset with `python -m data_prep.convert` first.')
  return config.data.dataset_dir


def run_eval(config, workdir: str, model=None, variables=None,
             step: int | None = None) -> dict:
  """Evaluates (the latest checkpoint unless variables are given)."""
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax import evaluate  # pylint: disable=g-import-not-at-top
  from gait_jax import reports  # pylint: disable=g-import-not-at-top
  from gait_jax import train  # pylint: disable=g-import-not-at-top
  if variables is None:
    model, variables, step = train.latest_variables(config, workdir)
  mesh = train.make_mesh(config)
  test_src = evaluate.open_test_source(config)
  result, emb = evaluate.evaluate_source(model, variables, test_src, mesh,
                                         config.eval,
                                         train.compute_dtype(config))
  if jax.process_index() == 0:  # Every process embeds; one writes.
    path = evaluate.write_report(result, workdir, step)
    if config.eval.plots:
      reports.write_plots(result, emb, test_src, workdir)
    print(result.format_table(), flush=True)
    print(f'Report: {path}', flush=True)
  return result.summary()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    # Progress goes to stdout; library logs only from WARNING unless asked
    # for with --verbosity=0 (INFO) or higher.
    logging.set_verbosity(logging.WARNING)
  if _WORKDIR.value is None or _CONFIG.value is None:
    raise app.UsageError('--config and --workdir are required.')
  parallel.maybe_initialize_distributed(_COORDINATOR.value,
                                        _NUM_PROCESSES.value, _PROCESS_ID.value)
  config, workdir = _CONFIG.value, _WORKDIR.value
  if _MODE.value == 'compile':
    from gait_jax import aot  # pylint: disable=g-import-not-at-top
    report = aot.compile_train_step(
        config, _classes_without_data(config),
        None if config.train.num_devices < 0 else config.train.num_devices)
    print(report.format(), flush=True)
    return
  if _MODE.value == 'parity':
    run_parity(config)
    return
  prepare_dataset(config)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=1))
  if _MODE.value == 'train':
    from gait_jax import train  # pylint: disable=g-import-not-at-top
    state = train.train(config, workdir)
    if int(state.step) < config.train.num_steps:
      print(f'Stopped at step {int(state.step)} (SIGTERM); run the same '
            'command again to resume.', flush=True)
      return
    if config.train.eval_at_end:
      model = train.build_model(config, _num_classes(config), axis_name=None)
      run_eval(config, workdir, model,
               {'params': state.params, 'batch_stats': state.batch_stats},
               int(state.step))
  elif _MODE.value == 'eval':
    run_eval(config, workdir)
  elif _MODE.value == 'convert':
    run_convert(config, workdir)


def _model_kwargs(config) -> tuple[str, dict]:
  kwargs = config.model.to_dict()
  name = kwargs.pop('name')
  if kwargs.get('num_classes', -1) == -1:
    kwargs['num_classes'] = _num_classes(config)
  return name, kwargs


def run_convert(config, workdir: str) -> None:
  """OpenGait checkpoint → orbax checkpoint of config.model in workdir."""
  from gait_jax import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
  from gait_jax import train  # pylint: disable=g-import-not-at-top
  if not _CHECKPOINT.value:
    raise app.UsageError('--mode=convert needs --checkpoint=file.pt')
  name, kwargs = _model_kwargs(config)
  variables = torch_compat.load_opengait_checkpoint(
      _CHECKPOINT.value, name, kwargs, bnneck_layout=_BNNECK_LAYOUT.value)
  state = train.state_from_variables(config, kwargs['num_classes'], variables)
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False)
  if checkpointer.latest_step() is not None:
    raise FileExistsError(f'{checkpointer.directory} already holds '
                          'checkpoints; convert into a new --workdir.')
  meta = ckpt_lib.checkpoint_meta(config)
  meta['model']['num_classes'] = kwargs['num_classes']
  meta['converted_from'] = os.path.abspath(_CHECKPOINT.value)
  checkpointer.save(0, state, meta, force=True)
  checkpointer.close()
  print(f'Converted {_CHECKPOINT.value} ({name}) to '
        f'{checkpointer.directory}/0', flush=True)


def run_parity(config) -> None:
  """Prints the PyTorch-vs-Flax parity report of --torch_module."""
  import importlib  # pylint: disable=g-import-not-at-top
  from gait_jax import torch_compat  # pylint: disable=g-import-not-at-top
  if not _TORCH_MODULE.value or ':' not in _TORCH_MODULE.value:
    raise app.UsageError('--mode=parity needs --torch_module='
                         'package.module:factory')
  module_name, factory = _TORCH_MODULE.value.split(':', 1)
  module = getattr(importlib.import_module(module_name), factory)()
  if _CHECKPOINT.value:
    import torch  # pylint: disable=g-import-not-at-top
    state = torch.load(_CHECKPOINT.value, map_location='cpu',
                       weights_only=False)
    module.load_state_dict(state.get('model', state))
  kwargs = config.model.to_dict()
  name = kwargs.pop('name')
  if kwargs.get('num_classes', -1) == -1:
    kwargs.pop('num_classes')
  for train_mode in (False, True):
    report = torch_compat.parity_report(
        module, name, kwargs, frames=config.data.num_frames,
        train=train_mode, bnneck_layout=_BNNECK_LAYOUT.value)
    print(torch_compat.format_parity_report(report), flush=True)


def _classes_without_data(config) -> int:
  """The classifier size from the config or dataset metadata (no records)."""
  if config.model.num_classes > 0:
    return config.model.num_classes
  if config.data.source == 'synthetic':
    return config.data.synthetic.num_train_subjects
  from gait_jax.data.source import read_metadata  # pylint: disable=g-import-not-at-top
  if os.path.isdir(config.data.dataset_dir):
    return len(read_metadata(config.data.dataset_dir)['train_subjects'])
  raise ValueError('--mode=compile needs the class count: set '
                   '--config.model.num_classes or data.dataset_dir.')


def _num_classes(config) -> int:
  from gait_jax.data.source import GaitSource  # pylint: disable=g-import-not-at-top
  return len(GaitSource(config.data.dataset_dir, 'train').train_classes())


if __name__ == '__main__':
  app.run(main)
