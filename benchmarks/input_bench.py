"""Input pipeline throughput vs the train step's consumption rate.

Reads P×K training batches from the synthetic dataset's TFDS shards through
the grain pipeline (threads, and worker processes) and compares host
batches/s with the steps/s of the jitted train step of the same config on the
same machine. The pipeline keeps up when the ratio is above 1; the target is 2.

  python benchmarks/input_bench.py [--config=configs/synthetic_demo.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import common  # pylint: disable=g-bad-import-order
import jax

from gait_jax import experiment
from gait_jax import parallel
from gait_jax.data import pipeline
from gait_jax.data import sampling
from gait_jax.data.source import GaitSource


def load_config(spec: str):
  """``path/to/config.py[:arg]`` → the config its ``get_config(arg)`` returns."""
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('bench_config', path)
  if module_spec is None:
    raise FileNotFoundError(f'--config={spec!r}: no config file at {path!r}.')
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg)


def _loader(config):
  config.data.dataset_dir = common.synthetic_dataset(config.data.data_dir)
  src = GaitSource(config.data.dataset_dir, 'train')
  classes = src.train_classes()
  sampler = sampling.PKSampler(src.subject_indices(classes), config.data.p,
                               config.data.k, seed=0)
  return pipeline.TrainBatchLoader.from_config(config.data, src,
                                               sampler), len(classes)


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
  run = experiment.build_training(config, num_classes)
  state, step = run.state, run.step
  host = loader(0)
  batch = parallel.host_to_global(
      run.mesh, {k: host[k] for k in ('sils', 'labels', 'mask')})
  state, metrics = step(state, batch)  # Compile.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return steps / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/synthetic_demo.py',
                      help='Experiment config file[:arg].')
  parser.add_argument('--data_dir', default=None,
                      help='Where the synthetic dataset is built (default: '
                      "the config's data.data_dir).")
  parser.add_argument('--batches', type=int, default=40,
                      help='Batches read per setting.')
  parser.add_argument('--workers', type=int, nargs='+', default=[0, 2],
                      help='grain worker counts to measure.')
  parser.add_argument('--steps', type=int, default=10,
                      help='Train steps timed.')
  args = parser.parse_args()
  config = load_config(args.config)
  if args.data_dir:
    config.data.data_dir = args.data_dir
  loader, num_classes = _loader(config)
  steps_per_s = _step_rate(config, loader, num_classes, args.steps)
  print(f'machine: {common.machine()}')
  print(f'config: {config.model.name}/{config.model.variant}, P×K='
        f'{config.data.p}×{config.data.k}, {config.data.num_frames} frames')
  print(f'train step consumes {steps_per_s:8.2f} batches/s')
  for workers in args.workers:
    rate = _input_rate(loader, workers, args.batches)
    print(f'grain pipeline, {workers} workers: {rate:8.2f} batches/s '
          f'-> {rate / steps_per_s:.2f}x the step rate')


if __name__ == '__main__':
  main()
