r"""Per-convolution time, XLA vs PyTorch, on the CPU.

A companion of ``train_bench.py``: where the JAX train step of a model is
slower than the PyTorch one, this times every convolution of the model at the
shapes it has in that benchmark, alone, in a jitted JAX function
(`jax.lax.conv_general_dilated`, channels-last as Flax lays them out) and in
PyTorch (``F.conv2d``/``F.conv3d``, channels-first as OpenGait lays them
out), interleaved, median of ``--repeats``:

* ``fwd``: the forward convolution;
* ``dW``: the kernel gradient alone (XLA: the transpose rule, a convolution
  that contracts over the batch; PyTorch: ``backward`` with an input that
  needs no gradient);
* ``dW mm`` (XLA only): the same kernel gradient as one matrix product per
  kernel tap (`kernel_grad_by_taps`), the form a custom VJP could use;
* ``f+b``: forward and the gradients of input and kernel (the first layer's
  input needs none), as in a train step.

Shapes follow ``train_bench.py --size=cpu`` (P×K 4×4 = 16 sequences of 12
frames); ``--channels`` changes the model's channels (default: those of that
size).

Usage:
  python benchmarks/train_bench_layers.py --model=gaitgl [--repeats=5]
  python benchmarks/train_bench_layers.py --model=gaitbase \
      --channels=64,128,256,512
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import time

import common  # pylint: disable=g-bad-import-order
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CHANNELS = {
    'gaitgl': (32, 64, 128),
    'gaitbase': (32, 64, 128, 256),
    'baseline': (32, 64, 128),
    'gaitset': (32, 64, 128),
}
COLUMNS = ('XLA fwd', 'torch fwd', 'XLA dW', 'XLA dW mm', 'torch dW',
           'XLA f+b', 'torch f+b')


@dataclasses.dataclass(frozen=True)
class Conv:
  """One convolution: channels-last input shape, output channels, geometry."""
  name: str
  shape: tuple[int, ...]  # [N, (D,) H, W, C]
  features: int
  kernel: tuple[int, ...]
  stride: tuple[int, ...]
  padding: tuple[int, ...]
  input_grad: bool = True

  @property
  def out_spatial(self) -> tuple[int, ...]:
    return tuple((s + 2 * p - k) // st + 1 for s, k, st, p in
                 zip(self.shape[1:-1], self.kernel, self.stride,
                     self.padding))

  @property
  def flops(self) -> float:
    """Forward multiply-adds × 2."""
    return (2.0 * self.shape[0] * np.prod(self.out_spatial) * self.features
            * self.shape[-1] * np.prod(self.kernel))



def gaitgl_convs(n: int, s: int, c: tuple[int, ...]) -> list[Conv]:
  """GaitGL (CASIA-B structure): global and strip-local 3-D convs."""
  t = s // 3
  k3, one, pad = (3, 3, 3), (1, 1, 1), (1, 1, 1)
  return [
      Conv('conv3d 1→c0', (n, s, 64, 44, 1), c[0], k3, one, pad, False),
      Conv('LTA (3,1,1)/3', (n, s, 64, 44, c[0]), c[0], (3, 1, 1),
           (3, 1, 1), (0, 0, 0)),
      Conv('A0 global', (n, t, 64, 44, c[0]), c[1], k3, one, pad),
      Conv('A0 local (8 strips)', (8 * n, t, 8, 44, c[0]), c[1], k3, one,
           pad),
      Conv('A1 global', (n, t, 32, 22, c[1]), c[2], k3, one, pad),
      Conv('A1 local (8 strips)', (8 * n, t, 4, 22, c[1]), c[2], k3, one,
           pad),
      Conv('B2 global', (n, t, 32, 22, c[2]), c[2], k3, one, pad),
      Conv('B2 local (8 strips)', (8 * n, t, 4, 22, c[2]), c[2], k3, one,
           pad),
  ]


def gaitbase_convs(n: int, s: int, c: tuple[int, ...]) -> list[Conv]:
  """GaitBase's ResNet9 (strides 1, 2, 2, 1), frame by frame."""
  f = n * s
  k3, k1, p1, p0 = (3, 3), (1, 1), (1, 1), (0, 0)
  return [
      Conv('conv1 1→c0', (f, 64, 44, 1), c[0], k3, (1, 1), p1, False),
      Conv('layer1 conv1/2', (f, 64, 44, c[0]), c[0], k3, (1, 1), p1),
      Conv('layer2 conv1 /2', (f, 64, 44, c[0]), c[1], k3, (2, 2), p1),
      Conv('layer2 conv2', (f, 32, 22, c[1]), c[1], k3, (1, 1), p1),
      Conv('layer2 down 1x1/2', (f, 64, 44, c[0]), c[1], k1, (2, 2), p0),
      Conv('layer3 conv1 /2', (f, 32, 22, c[1]), c[2], k3, (2, 2), p1),
      Conv('layer3 conv2', (f, 16, 11, c[2]), c[2], k3, (1, 1), p1),
      Conv('layer3 down 1x1/2', (f, 32, 22, c[1]), c[2], k1, (2, 2), p0),
      Conv('layer4 conv1', (f, 16, 11, c[2]), c[3], k3, (1, 1), p1),
      Conv('layer4 conv2', (f, 16, 11, c[3]), c[3], k3, (1, 1), p1),
      Conv('layer4 down 1x1', (f, 16, 11, c[2]), c[3], k1, (1, 1), p0),
  ]


def plain_convs(n: int, s: int, c: tuple[int, ...]) -> list[Conv]:
  """Baseline's / GaitSet's frame-wise stack: 2 convs per stage, 2 pools."""
  f = n * s
  k3, one, p1 = (3, 3), (1, 1), (1, 1)
  return [
      Conv('conv 1→c0 5x5', (f, 64, 44, 1), c[0], (5, 5), one, (2, 2),
           False),
      Conv('conv c0→c0', (f, 64, 44, c[0]), c[0], k3, one, p1),
      Conv('conv c0→c1', (f, 32, 22, c[0]), c[1], k3, one, p1),
      Conv('conv c1→c1', (f, 32, 22, c[1]), c[1], k3, one, p1),
      Conv('conv c1→c2', (f, 16, 11, c[1]), c[2], k3, one, p1),
      Conv('conv c2→c2', (f, 16, 11, c[2]), c[2], k3, one, p1),
  ]


LAYERS = {'gaitgl': gaitgl_convs, 'gaitbase': gaitbase_convs,
          'baseline': plain_convs, 'gaitset': plain_convs}


# ----------------------------------------------------------------------------
# The two sides.


def conv_nd(x, w, conv: Conv):
  """The convolution in JAX, channels-last."""
  spatial = 'DHW'[-len(conv.kernel):]
  return jax.lax.conv_general_dilated(
      x, w, conv.stride, [(p, p) for p in conv.padding],
      dimension_numbers=('N' + spatial + 'C', spatial + 'IO',
                         'N' + spatial + 'C'))


def kernel_grad_by_taps(x, dy, conv: Conv):
  """The kernel gradient as one matrix product per kernel tap.

  For tap ``o`` the input window it sees, ``[M, C]`` over all output
  positions M, is multiplied by the output gradient ``[M, O]``:
  ``dW[o] = x_o^T dy``.

  Args:
    x: the input, channels-last.
    dy: the output gradient, channels-last.
    conv: the geometry.

  Returns:
    ``dW`` shaped like the kernel (``[*kernel, C, O]``).
  """
  c, o = x.shape[-1], dy.shape[-1]
  xp = jnp.pad(x, [(0, 0)] + [(p, p) for p in conv.padding] + [(0, 0)])
  rows = dy.reshape(-1, o)
  taps = []
  for offset in itertools.product(*[range(k) for k in conv.kernel]):
    window = tuple(slice(a, a + s * (n - 1) + 1, s) for a, s, n in
                   zip(offset, conv.stride, conv.out_spatial))
    patch = xp[(slice(None),) + window].reshape(-1, c)
    taps.append(jax.lax.dot_general(patch, rows, (((0,), (0,)), ((), ()))))
  return jnp.stack(taps).reshape(tuple(conv.kernel) + (c, o))


def jax_fns(conv: Conv, rng: np.random.Generator):
  """Zero-argument, blocking JAX functions: fwd, dW, dW mm, f+b."""
  x = jnp.asarray(rng.normal(size=conv.shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=conv.kernel + (conv.shape[-1],
                                                 conv.features)) * 0.05,
                  jnp.float32)
  dy = jnp.asarray(rng.normal(size=(conv.shape[0],) + conv.out_spatial
                              + (conv.features,)), jnp.float32)
  fwd = jax.jit(lambda x, w: conv_nd(x, w, conv))
  dw = jax.jit(jax.grad(lambda w, x: jnp.vdot(conv_nd(x, w, conv), dy)))
  dw_mm = jax.jit(lambda x: kernel_grad_by_taps(x, dy, conv))
  np.testing.assert_allclose(np.asarray(dw_mm(x)), np.asarray(dw(w, x)),
                             rtol=2e-3, atol=2e-2)
  argnums = (0, 1) if conv.input_grad else (1,)
  full = jax.jit(jax.grad(lambda x, w: jnp.vdot(conv_nd(x, w, conv), dy),
                          argnums=argnums))
  run = lambda fn, *a: lambda: jax.block_until_ready(fn(*a))
  return [run(fwd, x, w), run(dw, w, x), run(dw_mm, x), run(full, x, w)]


def torch_fns(conv: Conv, rng: np.random.Generator):
  """Zero-argument PyTorch functions: fwd, dW, f+b."""
  op = F.conv3d if len(conv.kernel) == 3 else F.conv2d
  n, c = conv.shape[0], conv.shape[-1]
  x = torch.tensor(rng.normal(size=(n, c) + conv.shape[1:-1]),
                   dtype=torch.float32)
  x_grad = x.clone().requires_grad_(conv.input_grad)
  w = torch.tensor(rng.normal(size=(conv.features, c) + conv.kernel) * 0.05,
                   dtype=torch.float32, requires_grad=True)
  dy = torch.tensor(rng.normal(size=(n, conv.features) + conv.out_spatial),
                    dtype=torch.float32)
  apply = lambda x: op(x, w, stride=conv.stride, padding=conv.padding)

  def fwd():
    with torch.no_grad():
      apply(x)

  def backward(inputs):
    inputs.grad = w.grad = None
    apply(inputs).backward(dy)

  return [fwd, lambda: backward(x), lambda: backward(x_grad)]


def time_interleaved(fns, repeats: int) -> list[float]:
  """Median seconds of each function, run in turn after one warm-up."""
  for fn in fns:
    fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, t in zip(fns, times):
      start = time.perf_counter()
      fn()
      t.append(time.perf_counter() - start)
  return [statistics.median(t) for t in times]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='gaitgl', choices=sorted(LAYERS))
  parser.add_argument('--channels', default='',
                      help='Comma-separated channels (default: the cpu size).')
  parser.add_argument('--sequences', type=int, default=16)
  parser.add_argument('--frames', type=int, default=12)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  channels = (tuple(int(c) for c in args.channels.split(','))
              if args.channels else DEFAULT_CHANNELS[args.model])
  convs = LAYERS[args.model](args.sequences, args.frames, channels)
  print(f'machine: {common.machine()}; PyTorch {torch.__version__}, '
        f'{torch.get_num_threads()} threads; load '
        f'{os.getloadavg()[0]:.1f}')
  print(f'{args.model}, channels {channels}, {args.sequences} sequences × '
        f'{args.frames} frames; milliseconds, median of {args.repeats}')
  print(f'{"layer":22s} {"GFLOP":>6s} ' + ' '.join(f'{c:>9s}'
                                                   for c in COLUMNS)
        + f' {"torch/XLA f+b":>13s}')
  totals = np.zeros(len(COLUMNS))
  for conv in convs:
    rng = np.random.default_rng(0)
    xla_fwd, xla_dw, xla_mm, xla_full = jax_fns(conv, rng)
    t_fwd, t_dw, t_full = torch_fns(conv, rng)
    ms = 1e3 * np.array(time_interleaved(
        [xla_fwd, t_fwd, xla_dw, xla_mm, t_dw, xla_full, t_full],
        args.repeats))
    totals += ms
    print(_row(conv.name, f'{conv.flops / 1e9:6.1f}', ms), flush=True)
  print(_row('total', '', totals))
  print(f'load after: {os.getloadavg()[0]:.1f}')


def _row(name: str, gflop: str, ms: np.ndarray) -> str:
  return (f'{name:22s} {gflop:>6s} ' + ' '.join(f'{t:9.1f}' for t in ms)
          + f' {ms[-1] / ms[-2]:12.2f}×')


if __name__ == '__main__':
  main()
