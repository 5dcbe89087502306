"""The trainer: one linear ``train`` in commented phases.

Phases: data → model, optimizer, state and sharded step
(``experiment.build_training``) → checkpoint resume → evaluation → the loop
(metrics, checkpoints, evaluation every ``train.eval_every`` steps, SIGTERM,
non-finite guard). The per-device step is ``train_step.make_step_fn``.
"""

from __future__ import annotations

import contextlib
import signal
import time

import jax
import ml_collections
from absl import logging

from gait_jax import checkpoint as ckpt_lib
from gait_jax import evaluation
from gait_jax import experiment
from gait_jax import parallel
from gait_jax import warm_start
from gait_jax.data import augment as augment_lib
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data.source import GaitSource
from gait_jax.metric_writer import MetricWriter
from gait_jax.metric_writer import format_scalars
from gait_jax.train_step import TrainState


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradients became NaN/Inf."""


def eval_every(config) -> int:
  """``config.train.eval_every`` (0 = no evaluation during training)."""
  every = config.train.eval_every
  if isinstance(every, bool) or not isinstance(every, int) or every < 0:
    raise ValueError(f'train.eval_every={every!r}; it must be an integer '
                     '>= 0 (0 = off).')
  return every


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from ``workdir`` if it holds a checkpoint).

  Stops early, with a checkpoint of the last finished step, on SIGTERM; the
  returned state's ``step`` is then below ``train.num_steps``.

  Args:
    config: a locked experiment config (``gait_jax.config`` schema).
    workdir: checkpoints, TensorBoard files and reports go here.

  Returns:
    The final train state.

  Raises:
    NonFiniteLossError: the loss became NaN/Inf; the last checkpoint is kept.
    checkpoint.CheckpointMismatchError: ``workdir`` holds another model's
      checkpoint, or one trained with another optimizer.
  """
  every = eval_every(config)  # Validates early.
  augment_lib.from_config(config.data.augment)  # Validates early.

  # --- Data: the stateless P×K sampler and this host's loader.
  if not config.data.dataset_dir:
    raise ValueError('config.data.dataset_dir is empty: point it at a TFDS '
                     'gait dataset (<data_dir>/<name>/<version>).')
  train_src = GaitSource(config.data.dataset_dir, 'train')
  classes = train_src.train_classes()
  num_classes = experiment.num_classes(config)
  if len(classes) > num_classes:
    raise ValueError(f'The train split of {config.data.dataset_dir} has '
                     f'{len(classes)} subjects but model.num_classes='
                     f'{num_classes}.')
  sampler = sampling.PKSampler(
      train_src.subject_indices(classes), config.data.p, config.data.k,
      seed=config.seed, batch_shuffle=config.data.batch_shuffle)
  loader = pipeline.TrainBatchLoader.from_config(
      config.data, train_src, sampler, process_index=jax.process_index(),
      process_count=jax.process_count())

  # --- Model, optimizer, state and the sharded step.
  run = experiment.build_training(config, num_classes)
  _say(f'Model {config.model.name}/{config.model.get("variant", "")}: '
       f'{run.num_params:,} parameters, {num_classes} classes, '
       f'{run.mesh.size} devices, P×K={config.data.p}×{config.data.k}; '
       f'process {jax.process_index()} of {jax.process_count()}.',
       every_process=True)

  # --- Checkpoints: resume from the newest step of the workdir that restores
  # (a converted checkpoint is step 0: fine-tuning starts from it).
  checkpointer = ckpt_lib.Checkpointer(workdir,
                                       max_to_keep=config.train.keep_ckpts)
  meta = experiment.checkpoint_meta(config, num_classes)
  # SIGTERM from here on saves a checkpoint and returns (see _SigtermFlag).
  with _SigtermFlag() as sigterm, contextlib.ExitStack() as cleanup:
    cleanup.callback(checkpointer.close)
    state, start = run.state, 0
    restored = checkpointer.restore_latest(state, meta)
    if restored is not None:
      state, start = restored
      _say(f'Resumed from step {start} of {checkpointer.directory}.')
    elif config.train.init_from:  # Fresh run: matching weights of another.
      state, report = warm_start.load_matching(
          state, config.train.init_from, strict=config.train.init_from_strict)
      _say(f'Initialised from {config.train.init_from}: {report.summary()}.')

    # --- Evaluation during training (built once: one compilation per
    # bucket).
    evaluator = evaluation.Evaluator(config, run.eval_model, run.mesh,
                                     workdir) if every else None

    # --- The loop.
    writer = MetricWriter(workdir, start_step=start)
    cleanup.callback(writer.close)
    batches = pipeline.train_iterator(loader, start, config.train.num_steps,
                                      workers=config.data.workers,
                                      prefetch=config.data.prefetch)
    state = _loop(config, state, run.step, batches, run.mesh, start, writer,
                  checkpointer, meta, evaluator, every, sigterm)
  return state


def _loop(config, state, p_step, batches, mesh, start, writer, checkpointer,
          meta, evaluator, every, sigterm):
  """Runs steps ``start .. train.num_steps - 1``; see ``train``."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  total = config.train.num_steps
  log_every, ckpt_every = config.train.log_every, config.train.ckpt_every
  pending = None  # (step, metrics) of the previous step: checked one late.
  timer = (time.perf_counter(), start)
  bar = tqdm(total=total, initial=start, desc='train', unit='step',
             disable=jax.process_index() != 0, mininterval=2.0)
  for step in range(start, total):
    host = next(batches)
    if int(host['step']) != step:
      raise RuntimeError(f'Data pipeline out of order: batch for step '
                         f'{int(host["step"])} at step {step}.')
    batch = parallel.host_to_global(
        mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
    state, metrics = p_step(state, batch)
    if pending is not None:
      _check_finite(*pending, checkpointer)
    pending = (step, metrics)
    done = step + 1
    bar.update(1)
    if done % log_every == 0 or done == total:
      _check_finite(*pending, checkpointer)
      scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
      now = time.perf_counter()
      scalars['steps_per_sec'] = (done - timer[1]) / (now - timer[0])
      timer = (now, done)
      writer.write_scalars(done, scalars)
      bar.set_postfix(loss=f'{scalars["loss/total"]:.4f}')
      _say(f'step {done}: {format_scalars(scalars)}', bar)
    if done % ckpt_every == 0 or done == total or sigterm.raised:
      _check_finite(*pending, checkpointer)
      checkpointer.save(done, state, meta, force=True)
    if evaluator is not None and done % every == 0 and not sigterm.raised:
      _check_finite(*pending, checkpointer)
      began = time.perf_counter()
      evaluator.run(done, {'params': state.params,
                           'batch_stats': state.batch_stats},
                    final=False, writer=writer, bar=bar)
      # steps_per_sec counts training only.
      timer = (timer[0] + time.perf_counter() - began, timer[1])
    if sigterm.raised:
      logging.warning('SIGTERM: saved step %d to %s; exiting.', done,
                      checkpointer.directory)
      _say(f'SIGTERM: saved step {done}; exiting.', bar)
      break
  bar.close()
  return state


class _SigtermFlag:
  """Set by SIGTERM; the loop saves a checkpoint and returns cleanly."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: no handler, nothing to restore.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _say(message: str, bar=None, every_process: bool = False) -> None:
  """Prints a progress line (process 0 only unless ``every_process``)."""
  logging.info(message)
  if every_process or jax.process_index() == 0:
    if bar is not None:
      bar.write(message)
    else:
      print(message, flush=True)


def _check_finite(step: int, metrics, checkpointer) -> None:
  if float(metrics['finite']) < 1.0:
    checkpointer.wait()
    raise NonFiniteLossError(
        f'Non-finite loss or gradient at step {step + 1} (loss='
        f'{float(metrics["loss/total"])}, grad_norm='
        f'{float(metrics["grad_norm"])}). Training stopped; the state of '
        f'step {step} was not updated and the last good checkpoint '
        f'(step {checkpointer.latest_step()}) in {checkpointer.directory} is '
        'kept. Lower optim.lr or check the data.')
