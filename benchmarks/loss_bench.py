"""Forward+backward time and peak memory of the GIL loss, JAX vs PyTorch.

The loss is the ``gil`` preset: the pair-weighted batch-all triplet loss plus
0.1 × the uniformity of the class centres, on embeddings [n, parts, channels]
of a P×K batch. The JAX side is `gait_jax.losses.compute_loss`, jitted with
its gradient. The PyTorch side is written the way the reference code (the
GIL authors' fork of OpenGait) computes the triplet term: distances by the
expanded formula, the weight matrix, every triplet as index lists from
``torch.where``, autograd for the backward pass. A second PyTorch variant
builds the triplets from OpenGait's boolean-mask views instead. The
uniformity term is a vectorised PyTorch version of the same formula.

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


def torch_gil_loss(emb: torch.Tensor, labels: torch.Tensor,
                   style: str = 'where') -> torch.Tensor:
  """Pair-weighted triplet + 0.1 × uniformity, in PyTorch.

  Args:
    emb: [n, parts, channels] embeddings.
    labels: [n] identities (a P×K batch).
    style: 'where' enumerates the triplets as index lists with torch.where
      (the GIL authors' code); 'views' takes OpenGait's boolean-mask views
      [p, n, K, 1] and [p, n, 1, n-K] and broadcasts them.

  Returns:
    The scalar loss.
  """
  e = emb.permute(1, 0, 2).float()  # [p, n, c]
  # Triplet term: distances, weights, triplets.
  x2 = torch.sum(e ** 2, -1)
  dist = x2.unsqueeze(2) + x2.unsqueeze(1) - 2 * e.matmul(e.transpose(1, 2))
  dist = torch.sqrt(F.relu(dist))  # [p, n, n]
  u = F.normalize(e, dim=-1)
  w = 1 - (u.matmul(u.transpose(1, 2)) + 1) / 2 + 0.01
  w = 1 + w / w.max()
  dist = dist * w.detach()
  match = labels.unsqueeze(1) == labels.unsqueeze(0)  # [n, n]
  if style == 'where':
    a, q, m = torch.where(match.unsqueeze(2) & (~match).unsqueeze(1))
    loss = F.relu(dist[:, a, q] - dist[:, a, m] + MARGIN)  # [p, T]
  else:
    p, n = dist.shape[:2]
    k = int(match[0].sum())
    ap = dist[:, match].view(p, n, k, 1)
    an = dist[:, ~match].view(p, n, 1, n - k)
    loss = F.relu(ap - an + MARGIN).view(p, -1)  # [p, T]
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

  # PyTorch, both styles.
  y_t = torch.as_tensor(labels.astype(np.int64))
  def torch_step(style):
    def run():
      e_t = torch.tensor(emb, requires_grad=True)
      value = torch_gil_loss(e_t, y_t, style)
      value.backward()
      return value.detach(), e_t.grad
    return run

  n = p * k
  print(f'\n{name}: P×K = {p}×{k} (n = {n}), {parts} parts, {channels} '
        f'channels, {n * k * (n - k) * parts / 1e6:.1f}M triplet terms')
  mem_jax = peak_rss_rise_mib(run_jax)
  t_jax = median_ms(run_jax, repeats)
  print(f'  JAX (jit, value_and_grad):        {t_jax[0]:8.1f} ms (min '
        f'{t_jax[1]:.1f}), peak {mem_jax:7.1f} MiB  [executable estimate '
        f'{xla_mib:.1f} MiB]')
  result = dict(time_jax=t_jax[0], mem_jax=mem_jax, xla_mib=xla_mib)
  for style, label in (('where', 'PyTorch, torch.where index lists'),
                       ('views', 'PyTorch, OpenGait mask views     ')):
    run_torch = torch_step(style)
    value_t, grad_t = run_torch()
    run_torch()
    rel_value = abs(float(value_j) - float(value_t)) / abs(float(value_t))
    rel_grad = float(np.linalg.norm(np.asarray(grad_j) - grad_t.numpy())
                     / np.linalg.norm(grad_t.numpy()))
    mem = peak_rss_rise_mib(run_torch)
    t = median_ms(run_torch, repeats)
    print(f'  {label}: {t[0]:8.1f} ms (min {t[1]:.1f}), peak {mem:7.1f} '
          f'MiB  -> JAX is {t[0] / t_jax[0]:.2f}x faster, uses '
          f'{mem / max(mem_jax, 1e-9):.2f}x less memory  (agreement: loss '
          f'{rel_value:.0e}, grad {rel_grad:.0e})')
    result.update({f'time_{style}': t[0], f'mem_{style}': mem})
  return result


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
  print('Times: median wall-clock of value+gradient over '
        f'{args.repeats} runs after warm-up. Peak: rise of the process peak '
        'RSS (VmHWM) over the RSS before one run, mmap threshold 64 KiB.')
  for name in args.scales.split(','):
    run_scale(name, args.repeats)


if __name__ == '__main__':
  main()
