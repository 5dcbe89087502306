"""Input pipeline throughput vs the train step's consumption rate.

Reads P×K training batches from the synthetic dataset's TFDS shards through
the grain pipeline (threads, and worker processes) and compares host
batches/s with the steps/s of the jitted train step of the same config on the
same machine. The pipeline keeps up when the ratio is above 1; the target is 2.

  python benchmarks/input_bench.py [--config=configs/synthetic_demo.py]
"""

from __future__ import annotations

import time

import common  # pylint: disable=g-bad-import-order
from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from gait_jax import optim
from gait_jax import parallel
from gait_jax import train
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data.source import GaitSource

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/synthetic_demo.py', 'Experiment config.')
_BATCHES = flags.DEFINE_integer('batches', 40, 'Batches read per setting.')
_WORKERS = flags.DEFINE_multi_integer('workers', [0, 2],
                                      'grain worker counts to measure.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Train steps timed.')


def _loader(config):
  config.data.dataset_dir = common.synthetic_dataset(config.data.data_dir)
  src = GaitSource(config.data.dataset_dir, 'train')
  classes = src.train_classes()
  sampler = sampling.PKSampler(src.subject_indices(classes), config.data.p,
                               config.data.k, seed=0)
  return pipeline.TrainBatchLoader(
      src, sampler, frame_sampler=config.data.frame_sampler,
      num_frames=config.data.num_frames,
      frames_skip=config.data.frames_skip), len(classes)


def _input_rate(loader, workers: int, batches: int) -> float:
  it = pipeline.train_iterator(loader, 0, batches + 4, workers=workers,
                               prefetch=4)
  for _ in range(4):  # Start-up (worker spawn) is not throughput.
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches / (time.perf_counter() - start)


def _step_rate(config, loader, num_classes: int, steps: int) -> float:
  mesh = parallel.make_mesh()
  model = train.build_model(config, num_classes, parallel.DATA_AXIS)
  schedule = optim.make_schedule(config.optim, config.schedule, 100)
  tx = optim.make_optimizer(config.optim, schedule)
  state = train.init_state(model, tx, config, mesh)
  step = parallel.shard_step(
      train.make_step_fn(model, tx, schedule, config.loss, config.data.k,
                         train.compute_dtype(config)), mesh)
  host = loader(0)
  batch = parallel.host_to_global(
      mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
  state, metrics = step(state, batch)  # Compile.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return steps / (time.perf_counter() - start)


def main(argv):
  del argv
  config = _CONFIG.value
  loader, num_classes = _loader(config)
  steps_per_s = _step_rate(config, loader, num_classes, _STEPS.value)
  print(f'machine: {common.machine()}')
  print(f'config: {config.model.name}/{config.model.variant}, P×K='
        f'{config.data.p}×{config.data.k}, {config.data.num_frames} frames')
  print(f'train step consumes {steps_per_s:8.2f} batches/s')
  for workers in _WORKERS.value:
    rate = _input_rate(loader, workers, _BATCHES.value)
    print(f'grain pipeline, {workers} workers: {rate:8.2f} batches/s '
          f'-> {rate / steps_per_s:.2f}x the step rate')


if __name__ == '__main__':
  app.run(main)
