"""Forward+backward time and peak memory of the GIL loss, JAX vs PyTorch.

The loss is the ``gil`` preset: the pair-weighted batch-all triplet loss plus
0.1 × the uniformity of the class centres, on embeddings [n, parts, channels]
of a P×K batch. The JAX side is `gait_jax.losses.compute_loss`, jitted with
its gradient. The PyTorch side is written the way the reference code (the
GIL authors' fork of OpenGait) computes the triplet term: distances by the
expanded formula, the weight matrix, every triplet as index lists from
``torch.where``, autograd for the backward pass; the uniformity term is a
vectorised PyTorch version of the same formula.

Both run on the CPU in this process, one after the other, with the same
number of threads. Times are wall-clock medians over ``--repeats`` runs of
value and gradient w.r.t. the embeddings, after warm-up (JAX: compiled).
Peak memory is measured identically for both: the rise of the process's
peak resident set (VmHWM, reset through /proc/self/clear_refs) over its
resident set before one fresh forward+backward, with glibc's mmap threshold
fixed at 64 KiB so that freed buffers go back to the OS (the script
re-executes itself with MALLOC_MMAP_THRESHOLD_ set). For JAX the compiled
executable's own estimate (temp + argument + output buffers, from
``memory_analysis()``) is printed next to it.

Usage: python benchmarks/loss_bench.py [--repeats 10] [--scales casia_b,oumvlp]
"""

import argparse
import gc
import os
import statistics
import sys
import time

_MMAP_ENV = 'MALLOC_MMAP_THRESHOLD_'
if os.environ.get(_MMAP_ENV) != '65536' and __name__ == '__main__':
  os.execve(sys.executable, [sys.executable] + sys.argv,
            dict(os.environ, **{_MMAP_ENV: '65536'}))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

from gait_jax import losses

SCALES = {
    # name: (P, K, parts, channels)
    'casia_b': (8, 16, 62, 256),  # GaitSet on CASIA-B.
    'oumvlp': (32, 8, 64, 256),  # GaitGL on OUMVLP.
}
MARGIN = 0.2
UNIFORMITY_WEIGHT = 0.1
T = 2.0


# ----------------------------------------------------------------------------
# PyTorch, reference style.


def torch_gil_loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
  """Pair-weighted triplet (reference code style) + 0.1 × uniformity."""
  e = emb.permute(1, 0, 2).float()  # [p, n, c]
  # Triplet term: distances, weights, triplets as index lists.
  x2 = torch.sum(e ** 2, -1)
  dist = x2.unsqueeze(2) + x2.unsqueeze(1) - 2 * e.matmul(e.transpose(1, 2))
  dist = torch.sqrt(F.relu(dist))  # [p, n, n]
  u = F.normalize(e, dim=-1)
  w = 1 - (u.matmul(u.transpose(1, 2)) + 1) / 2 + 0.01
  w = 1 + w / w.max()
  dist = dist * w.detach()
  match = labels.unsqueeze(1) == labels.unsqueeze(0)  # [n, n]
  a, q, m = torch.where(match.unsqueeze(2) & (~match).unsqueeze(1))
  loss = F.relu(dist[:, a, q] - dist[:, a, m] + MARGIN)  # [p, T]
  num = (loss != 0).sum(-1).float()
  avg = loss.sum(-1) / (num + 1e-9)
  avg = torch.where(num == 0, torch.zeros_like(avg), avg)
  triplet = avg.mean()
  # Uniformity of the class centres.
  classes, index = torch.unique(labels, return_inverse=True)
  onehot = F.one_hot(index, len(classes)).float()  # [n, P]
  mu = F.normalize(onehot.t().matmul(u) / onehot.sum(0)[:, None], dim=-1)
  sq = torch.cdist(mu, mu) ** 2  # [p, P, P]
  off = ~torch.eye(len(classes), dtype=torch.bool)
  terms = (-T * sq)[:, off]  # [p, P(P-1)]
  uniformity = (torch.logsumexp(terms, -1) - np.log(terms.shape[-1])).mean()
  return triplet + UNIFORMITY_WEIGHT * uniformity


# ----------------------------------------------------------------------------
# Measurement helpers.


def _status_kib(field):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1])
  raise RuntimeError(f'{field} not in /proc/self/status')


def peak_rss_rise_mib(fn):
  """Rise of the peak resident set over the current one while running fn."""
  gc.collect()
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # Resets VmHWM to the current VmRSS.
  before = _status_kib('VmRSS')
  out = fn()
  peak = _status_kib('VmHWM')
  del out
  gc.collect()
  return (peak - before) / 1024


def median_ms(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - start)
    del out
  return 1e3 * statistics.median(times), 1e3 * min(times)


def make_inputs(p, k, parts, channels, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.repeat(np.arange(p), k)).astype(np.int32)
  emb = (rng.normal(size=(p * k, parts, channels))
         / np.sqrt(channels)).astype(np.float32)
  return emb, labels


def run_scale(name, repeats):
  p, k, parts, channels = SCALES[name]
  emb, labels = make_inputs(p, k, parts, channels)

  # JAX.
  cfg = losses.get_loss_config('gil', uniformity=dict(weight=UNIFORMITY_WEIGHT,
                                                      t=T))
  def loss_fn(e, y):
    return losses.compute_loss({'embeddings': e}, y, cfg,
                               samples_per_class=k)[0]
  step = jax.jit(jax.value_and_grad(loss_fn))
  e_j, y_j = jnp.asarray(emb), jnp.asarray(labels)
  compiled = step.lower(e_j, y_j).compile()
  stats = compiled.memory_analysis()
  xla_mib = (stats.temp_size_in_bytes + stats.argument_size_in_bytes
             + stats.output_size_in_bytes) / 2**20
  run_jax = lambda: jax.block_until_ready(compiled(e_j, y_j))
  value_j, grad_j = run_jax()
  run_jax()

  # PyTorch.
  y_t = torch.as_tensor(labels.astype(np.int64))
  def run_torch():
    e_t = torch.tensor(emb, requires_grad=True)
    value = torch_gil_loss(e_t, y_t)
    value.backward()
    return value.detach(), e_t.grad
  value_t, grad_t = run_torch()
  run_torch()

  rel_value = abs(float(value_j) - float(value_t)) / abs(float(value_t))
  rel_grad = float(np.linalg.norm(np.asarray(grad_j) - grad_t.numpy())
                   / np.linalg.norm(grad_t.numpy()))

  mem_jax = peak_rss_rise_mib(run_jax)
  mem_torch = peak_rss_rise_mib(run_torch)
  t_jax = median_ms(run_jax, repeats)
  t_torch = median_ms(run_torch, repeats)
  n = p * k
  print(f'\n{name}: P×K = {p}×{k} (n = {n}), {parts} parts, {channels} '
        f'channels, {n * k * (n - k) * parts / 1e6:.1f}M triplet terms')
  print(f'  agreement: loss rel. diff {rel_value:.1e}, gradient rel. '
        f'(L2) diff {rel_grad:.1e}')
  print(f'  time  (median / min of {repeats}):  JAX {t_jax[0]:8.1f} / '
        f'{t_jax[1]:.1f} ms   PyTorch {t_torch[0]:8.1f} / {t_torch[1]:.1f} ms'
        f'   speed-up {t_torch[0] / t_jax[0]:.2f}x')
  print(f'  peak memory (RSS rise):  JAX {mem_jax:8.1f} MiB   PyTorch '
        f'{mem_torch:8.1f} MiB   ratio {mem_torch / max(mem_jax, 1e-9):.2f}x')
  print(f'  JAX executable estimate (temp + args + outputs): {xla_mib:.1f} MiB')
  return dict(time_jax=t_jax[0], time_torch=t_torch[0], mem_jax=mem_jax,
              mem_torch=mem_torch, xla_mib=xla_mib)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--scales', default=','.join(SCALES))
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  print(f'CPU: {os.cpu_count()} cores; torch threads {args.threads}; '
        f'jax {jax.__version__} ({jax.devices()[0].platform}), torch '
        f'{torch.__version__}')
  for name in args.scales.split(','):
    run_scale(name, args.repeats)


if __name__ == '__main__':
  main()
