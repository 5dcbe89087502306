"""gait_jax command line: train, evaluate, and more, from a config file.

  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo
  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo \
      --mode=eval
  python launch.py --config=configs/synthetic_demo.py --workdir=workdirs/demo \
      --config.optim.lr=0.05

Modes (the work of each is in ``gait_jax.commands``):
  train    trains (resuming from --workdir), evaluating every
           config.train.eval_every steps (0 = never), then evaluates if
           config.train.eval_at_end. Exit status 75 when SIGTERM stopped the
           run after saving a checkpoint (run the command again to resume).
  eval     evaluates the newest checkpoint of --workdir.
  compile  lowers and compiles the train step for the config and the visible
           devices and prints the memory it needs; reads no data.
  convert  converts an OpenGait checkpoint (--checkpoint=file.pt) of
           config.model into an orbax checkpoint in --workdir, which
           --mode=eval then evaluates (and --mode=train fine-tunes).
  parity   runs a PyTorch module (--torch_module=package.module:factory,
           optionally loaded with --checkpoint) and its converted Flax twin
           on the same deterministic input and prints the max abs/rel
           differences of embeddings and logits.
  parity_train  trains that PyTorch module and its converted Flax twin for
           --steps steps on the same batches and writes the loss curves and
           parameter differences to --workdir/parity_train.json.
"""

from __future__ import annotations


from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

MODES = ('train', 'eval', 'compile', 'convert', 'parity', 'parity_train')

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (e.g. configs/synthetic_demo.py).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.')
_MODE = flags.DEFINE_enum('mode', 'train', MODES, 'What to do.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'convert/parity: an OpenGait .pt checkpoint.')
_BNNECK_LAYOUT = flags.DEFINE_enum(
    'bnneck_layout', 'channel_major', ('channel_major', 'part_major'),
    'convert/parity/parity_train: BNNeck layout of the checkpoint '
    '(part_major for checkpoints written before mid-2022).')
_TORCH_MODULE = flags.DEFINE_string(
    'torch_module', None, 'parity/parity_train: package.module:factory '
    'returning the PyTorch model (called with no arguments).')
_STEPS = flags.DEFINE_integer('steps', 30, 'parity_train: steps compared.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host: host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'Multi-host: index of this process.')


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    # Progress goes to stdout; library logs only from WARNING unless asked
    # for with --verbosity=0 (INFO) or higher.
    logging.set_verbosity(logging.WARNING)
  if _WORKDIR.value is None or _CONFIG.value is None:
    raise app.UsageError('--config and --workdir are required.')
  mode, config, workdir = _MODE.value, _CONFIG.value, _WORKDIR.value
  if mode == 'convert' and not _CHECKPOINT.value:
    raise app.UsageError('--mode=convert needs --checkpoint=file.pt')
  if mode in ('parity', 'parity_train') and not _TORCH_MODULE.value:
    raise app.UsageError(f'--mode={mode} needs --torch_module='
                         'package.module:factory')

  from gait_jax import commands  # pylint: disable=g-import-not-at-top
  from gait_jax import parallel  # pylint: disable=g-import-not-at-top
  parallel.maybe_initialize_distributed(_COORDINATOR.value,
                                        _NUM_PROCESSES.value, _PROCESS_ID.value)
  if mode in ('train', 'eval', 'parity_train'):
    from data_prep import prepare  # pylint: disable=g-import-not-at-top
    prepare.prepare_dataset(config)
  if mode == 'train':
    return commands.run_train(config, workdir)
  if mode == 'eval':
    return commands.run_eval(config, workdir)
  if mode == 'compile':
    return commands.run_compile(config)
  if mode == 'convert':
    return commands.run_convert(config, workdir, _CHECKPOINT.value,
                                _BNNECK_LAYOUT.value)
  if mode == 'parity_train':
    return commands.run_parity_train(config, workdir, _TORCH_MODULE.value,
                                     _STEPS.value, _BNNECK_LAYOUT.value)
  return commands.run_parity(config, _TORCH_MODULE.value, _CHECKPOINT.value,
                             _BNNECK_LAYOUT.value)


if __name__ == '__main__':
  app.run(main)
