"""The one check to run when an accelerator is available (meant for < 8 min).

For every model at its CASIA-B size (recipe P×K, 30 frames) on the same batch:

* train step: JAX (``--dtype``, default bfloat16) against OpenGait's PyTorch
  step (AMP autocast to bfloat16 on CUDA), median seconds per step, both
  timed interleaved in this process (``train_bench.JaxStep`` and
  ``train_bench.TorchStep``);
* MFU: XLA's compiled FLOPs per step ÷ median step time ÷ ``--peak_tflops``
  (default: the device's datasheet peak from ``train_bench.PEAK_TFLOPS``);
* memory: the compiled step's ``memory_analysis()`` (arguments + outputs +
  temporaries, the estimate ``launch.py --mode=compile`` prints) against
  ``jax.devices()[0].memory_stats()['peak_bytes_in_use']`` where the backend
  reports it (GPU, TPU; not the CPU). The measured peak is the process's
  running maximum, so a model's number also bounds those run before it;
  models run in the order of ``--models``;
* evaluation: the eval step (``evaluation.extract.make_embed_fn``) on
  ``--eval_batch`` sequences of ``--eval_frames`` frames, batched (one
  forward pass) against one sequence per forward pass (OpenGait's
  procedure; ``benchmarks/eval_bench.py`` measures the same on a dataset).

Writes everything as JSON to ``--out``. ``--dry_run`` runs the same code on
the tiny model variants with a 2×2×6 batch on whatever devices exist (CPU in
the tests), in seconds.

  python benchmarks/device_check.py --out=device_check.json
  python benchmarks/device_check.py --dry_run --out=/tmp/dry.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-bad-import-order,wrong-import-position
import train_bench  # pylint: disable=g-bad-import-order,wrong-import-position
import jax  # pylint: disable=g-bad-import-order
import jax.numpy as jnp
import torch

from gait_jax import experiment
from gait_jax import parallel
from gait_jax.evaluation import extract

MODELS = train_bench.MODELS
DRY_SIZE = train_bench.Size(
    p=2, k=2, frames=6, num_classes=8,
    overrides={name: dict(variant='tiny') for name in MODELS},
    note='dry run: tiny variants, P×K 2×2, 6 frames.')
SIZE = train_bench.SIZES['casia_b']


def _memory(compiled) -> dict[str, int]:
  """Per-device bytes of XLA's memory analysis (-1: not reported)."""
  analysis = compiled.memory_analysis()
  field = lambda name: int(getattr(analysis, name, -1)) if analysis else -1
  out = {name: field(f'{name}_size_in_bytes')
         for name in ('argument', 'output', 'alias', 'temp')}
  out['predicted_peak'] = sum(max(0, out[k])
                              for k in ('argument', 'output', 'temp'))
  return out


def _measured_peak() -> int:
  """The device's peak bytes in use so far (-1: not reported)."""
  stats = jax.devices()[0].memory_stats() or {}
  return int(stats.get('peak_bytes_in_use', -1))


def _times(fns, warmup: int, repeats: int) -> list[list[float]]:
  """Seconds of each of ``fns`` (blocking), run interleaved."""
  for _ in range(warmup):
    for fn in fns:
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, t in zip(fns, times):
      start = time.perf_counter()
      fn()
      t.append(time.perf_counter() - start)
  return times


def train_check(name: str, size: train_bench.Size, args,
                device: str) -> dict[str, Any]:
  """JAX vs PyTorch train step, MFU and memory of one model."""
  config = train_bench.recipe(name, size, args.dtype)
  host = train_bench.make_batch(config.data.p, config.data.k, size.frames,
                                size.num_classes)
  jstep = train_bench.JaxStep(config, size.num_classes, host)
  memory = _memory(jstep.compiled)
  autocast = (torch.bfloat16 if args.dtype == 'bfloat16' and device == 'cuda'
              else None)
  tstep = train_bench.TorchStep(name, jstep.model, config, host, device,
                                autocast)
  jax_t, torch_t = _times((jstep, tstep), args.warmup, args.repeats)
  jax_s, torch_s = statistics.median(jax_t), statistics.median(torch_t)
  peak = train_bench.peak_tflops(args.dtype, args.peak_tflops)
  tflops = jstep.flops / jax_s / 1e12 if jstep.flops > 0 else float('nan')
  seqs = config.data.p * config.data.k
  memory['measured_peak'] = _measured_peak()
  return dict(
      batch=f'{config.data.p}x{config.data.k}x{size.frames}',
      params=jstep.params, devices=jstep.devices,
      compile_s=jstep.compile_s, jax_step_s=jax_s, torch_step_s=torch_s,
      jax_seq_per_s=seqs / jax_s, torch_seq_per_s=seqs / torch_s,
      jax_over_torch=torch_s / jax_s, flops_per_step=jstep.flops,
      tflops=tflops, peak_tflops_per_device=peak,
      mfu=tflops / (peak * jstep.devices) if peak > 0 else float('nan'),
      jax_loss=jstep.loss(), torch_loss=tstep.loss(),
      torch_autocast=str(autocast), memory_bytes=memory)


def eval_check(name: str, size: train_bench.Size, args) -> dict[str, Any]:
  """Batched vs one-sequence-per-pass evaluation of one model."""
  config = train_bench.recipe(name, size, args.dtype)
  model = experiment.build_model(config, size.num_classes)
  mesh = parallel.make_mesh()
  b = max(args.eval_batch // mesh.size, 1) * mesh.size
  frames = args.eval_frames
  variables = jax.jit(model.init)(
      jax.random.key(0), jnp.zeros((1, frames, 64, 44), jnp.float32))
  variables = jax.device_put(variables, parallel.replicated(mesh))
  embed = extract.make_embed_fn(model, mesh, experiment.compute_dtype(config))
  host = train_bench.make_batch(b, 1, frames, max(b, 2))
  batch = parallel.host_to_global(
      mesh, {'sils': host['sils'], 'mask': host['mask']})
  # One sequence per forward pass: an unsharded batch of one.
  one = parallel.make_mesh(1)
  single = extract.make_embed_fn(model, one, experiment.compute_dtype(config))
  variables_one = jax.device_put(variables, parallel.replicated(one))
  rows = [(host['sils'][i:i + 1], host['mask'][i:i + 1]) for i in range(b)]

  def batched():
    jax.block_until_ready(embed(variables, batch['sils'], batch['mask']))

  def one_by_one():
    for sils, mask in rows:
      jax.block_until_ready(single(variables_one, sils, mask))

  batched_t, single_t = _times((batched, one_by_one), 1, args.repeats)
  batched_s, single_s = statistics.median(batched_t), statistics.median(
      single_t)
  return dict(sequences=b, frames=frames, batched_seq_per_s=b / batched_s,
              single_seq_per_s=b / single_s,
              batched_over_single=single_s / batched_s)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', required=True, help='JSON file to write.')
  parser.add_argument('--dry_run', action='store_true',
                      help='Tiny variants and batch, seconds on a CPU.')
  parser.add_argument('--models', default=','.join(MODELS))
  parser.add_argument('--dtype', default='bfloat16',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='Peak TFLOP/s of one device (0: datasheet).')
  parser.add_argument('--eval_batch', type=int, default=32)
  parser.add_argument('--eval_frames', type=int, default=60,
                      help='A multiple of 3 (GaitGL pools frames in threes).')
  parser.add_argument('--skip_eval', action='store_true')
  args = parser.parse_args(argv)
  if args.dry_run:
    args.warmup, args.repeats = 1, 2
    args.eval_batch, args.eval_frames = 4, 6
  return args


def main(argv=None) -> dict[str, Any]:
  args = parse_args(argv)
  size = DRY_SIZE if args.dry_run else SIZE
  names = [m.strip() for m in args.models.split(',') if m.strip()]
  for name in names:
    train_bench.check_supported(name, size)
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  report = dict(machine=common.machine(), platform=jax.devices()[0].platform,
                torch_device=device, dtype=args.dtype, dry_run=args.dry_run,
                size=size.note, command=' '.join(sys.argv), models={})
  for name in names:
    torch.manual_seed(0)
    start = time.perf_counter()
    entry = dict(train=train_check(name, size, args, device))
    if not args.skip_eval:
      entry['eval'] = eval_check(name, size, args)
    entry['seconds'] = time.perf_counter() - start
    report['models'][name] = entry
    t, m = entry['train'], entry['train']['memory_bytes']
    line = (f"{name}: JAX/PyTorch {t['jax_over_torch']:.2f}x, MFU "
            f"{t['mfu']:.3f}, memory predicted "
            f"{m['predicted_peak'] / 2**30:.2f} GiB, measured "
            f"{m['measured_peak'] / 2**30:.2f} GiB")
    if 'eval' in entry:
      speedup = entry['eval']['batched_over_single']
      line += f', eval batched/single {speedup:.1f}x'
    print(f"{line} ({entry['seconds']:.0f} s)", flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(report, f, indent=1, default=float)
  print(f'Wrote {args.out}')
  return report


if __name__ == '__main__':
  main()
