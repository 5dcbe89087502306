"""Batched, masked evaluation vs one sequence per forward pass.

Embeds the variable-length test split of the synthetic dataset two ways on the
same machine and prints embeddings/s and their ratio:

* batched: gait_jax's procedure — sequences sorted by length, padded to a few
  bucket lengths, many per forward pass, a frame mask;
* reference: OpenGait's procedure — one whole sequence per forward pass (here
  padded to the same bucket lengths, so both sides compile the same number of
  shapes and compilation is excluded from both timings).

  python benchmarks/eval_bench.py [--model=gaitset --variant=casia_b]
"""

from __future__ import annotations

import argparse
import time

import common  # pylint: disable=g-bad-import-order
import jax
import numpy as np

from gait_jax import models
from gait_jax import parallel
from gait_jax.data import pipeline
from gait_jax.data.source import GaitSource
from gait_jax.evaluation import extract


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='gaitset')
  parser.add_argument('--variant', default='casia_b')
  parser.add_argument('--data_dir', default='data')
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--buckets', default='24,32,40,48,64',
                      help='Padded lengths, comma-separated.')
  parser.add_argument('--max_sequences', type=int, default=256,
                      help='Embed this many test sequences (0 = all).')
  args = parser.parse_args()

  source = GaitSource(common.synthetic_dataset(args.data_dir), 'test')
  if args.max_sequences:  # A fixed, length-diverse subset.
    source = source.subset(
        np.linspace(0, len(source) - 1, args.max_sequences).astype(int))
  model = models.get_model(args.model, variant=args.variant, num_classes=24)
  mesh = parallel.make_mesh()
  buckets = tuple(int(b) for b in args.buckets.split(','))
  sample = np.zeros((1, buckets[0], 64, 44), np.float32)
  variables = model.init(jax.random.key(0), sample)
  embed = extract.make_embed_fn(model, mesh)

  def run(batch_size: int) -> float:
    start = time.perf_counter()
    for batch in pipeline.eval_batches(source, batch_size=batch_size,
                                       buckets=buckets,
                                       multiple_of=mesh.size):
      jax.block_until_ready(embed(variables, batch.sils, batch.mask))
    return time.perf_counter() - start

  def run_exact() -> float:
    """OpenGait's procedure verbatim: each sequence alone at its own length
    (in JAX: one compilation per distinct length), compilation included."""
    fn = jax.jit(lambda v, x: model.apply(v, x)['embeddings'])
    start = time.perf_counter()
    for i in range(len(source)):
      frames = source.frames(i)[None, :, :, 10:54].astype(np.float32) / 255
      jax.block_until_ready(fn(variables, frames))
    return time.perf_counter() - start

  cold_batched = run(args.batch_size)  # Includes compiling each bucket.
  exact = run_exact()
  run(1)  # Warm-up: compile every bucket shape at batch 1.
  batched = run(args.batch_size)
  single = run(1)
  n = len(source)
  print(f'machine: {common.machine()}')
  print(f'{args.model}/{args.variant}: {n} test sequences, lengths '
        f'{source.lengths.min()}-{source.lengths.max()} frames')
  print(f'batched (batch {args.batch_size}, buckets {buckets}): '
        f'{n / batched:8.1f} embeddings/s')
  print(f'one sequence per forward pass:       {n / single:8.1f} '
        'embeddings/s')
  print(f'ratio batched / one-at-a-time: {single / batched:.2f}x '
        '(steady state, compilation excluded on both sides)')
  print(f'from scratch, compilation included: batched {cold_batched:.1f} s, '
        f'one sequence at its own length {exact:.1f} s '
        f'({len(set(source.lengths.tolist()))} lengths) -> '
        f'{exact / cold_batched:.2f}x')


if __name__ == '__main__':
  main()
