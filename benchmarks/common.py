"""Shared set-up for the benchmarks: a dataset, configs, timing."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Callable

import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)


def synthetic_dataset(data_dir: str, num_subjects: int = 40,
                      num_train: int = 24) -> str:
  """The synthetic dataset (built on first use) for data-dependent benches."""
  from data_prep.synthetic import dataset as synthetic  # pylint: disable=g-import-not-at-top
  cfg = synthetic.SyntheticConfig(num_subjects=num_subjects,
                                  num_train_subjects=num_train)
  return synthetic.build_synthetic_dataset(data_dir, cfg)


def machine() -> str:
  """One line naming the machine the numbers come from."""
  dev = jax.devices()[0]
  kind = getattr(dev, 'device_kind', dev.platform)
  return (f'{platform.processor() or platform.machine()}, {os.cpu_count()} '
          f'CPU cores, JAX {jax.__version__} on {len(jax.devices())}x {kind}')


def timeit(fn: Callable[[], object], *, repeats: int = 5,
           min_seconds: float = 0.0) -> float:
  """Median seconds of ``fn()`` (which must block until done)."""
  times = []
  start = time.perf_counter()
  while len(times) < repeats or time.perf_counter() - start < min_seconds:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  times.sort()
  return times[len(times) // 2]
