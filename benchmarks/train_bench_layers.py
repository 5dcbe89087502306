r"""Per-convolution forward and backward time, XLA vs PyTorch, on the CPU.

A companion of ``train_bench.py``: where the JAX train step of a model is
slower than the PyTorch one, this times every convolution of the model at the
shapes it has in that benchmark, alone: forward, and forward plus the
gradients of its input and kernel (the first layer's input needs none), in a
jitted JAX function (`jax.lax.conv_general_dilated`, channels-last as Flax
lays them out) and in PyTorch (``F.conv2d``/``F.conv3d``, channels-first as
OpenGait lays them out), interleaved, median of ``--repeats``. A 3-D
convolution is also timed in an equivalent 2-D form (`conv3d_as_2d`: the
temporal taps stacked along the channels, one 2-D convolution).

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
  def flops(self) -> float:
    """Forward multiply-adds × 2."""
    out = [(s + 2 * p - k) // st + 1 for s, k, st, p in
           zip(self.shape[1:-1], self.kernel, self.stride, self.padding)]
    return (2.0 * self.shape[0] * np.prod(out) * self.features
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


def jax_fns(conv: Conv):
  """Jitted forward and forward+backward of one convolution, and inputs."""
  nd = len(conv.kernel)
  spatial = 'DHW'[-nd:]
  dims = ('N' + spatial + 'C', spatial + 'IO', 'N' + spatial + 'C')
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=conv.shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=conv.kernel + (conv.shape[-1],
                                                 conv.features)) * 0.05,
                  jnp.float32)

  def fwd(x, w):
    return jax.lax.conv_general_dilated(
        x, w, conv.stride, [(p, p) for p in conv.padding],
        dimension_numbers=dims)

  y = jax.eval_shape(fwd, x, w)
  g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  argnums = (0, 1) if conv.input_grad else (1,)
  bwd = jax.jit(jax.grad(lambda x, w: jnp.vdot(fwd(x, w), g),
                         argnums=argnums))
  return jax.jit(fwd), bwd, (x, w)


def conv3d_as_2d(x, w, stride, padding):
  """A 3-D convolution computed as one 2-D convolution over stacked taps.

  The ``kd`` temporal taps of every output frame are stacked along the
  channels, ``[N, D', H, W, kd·C]``, and convolved with the kernel reshaped to
  ``[kh, kw, kd·C, O]``: the same result as the 3-D convolution (zero
  temporal padding included), through the CPU backend's 2-D path.

  Args:
    x: ``[N, D, H, W, C]``.
    w: ``[kd, kh, kw, C, O]``.
    stride: 3 strides.
    padding: 3 symmetric paddings.

  Returns:
    ``[N, D', H', W', O]``.
  """
  n, d, _, _, c = x.shape
  kd, kh, kw, _, o = w.shape
  sd, pd = stride[0], padding[0]
  xp = jnp.pad(x, ((0, 0), (pd, pd), (0, 0), (0, 0), (0, 0)))
  d_out = (d + 2 * pd - kd) // sd + 1
  taps = [xp[:, i:i + sd * (d_out - 1) + 1:sd] for i in range(kd)]
  z = jnp.concatenate(taps, axis=-1)  # [N, D', H, W, kd·C]
  z = z.reshape((n * d_out,) + z.shape[2:])
  w2 = jnp.transpose(w, (1, 2, 0, 3, 4)).reshape(kh, kw, kd * c, o)
  y = jax.lax.conv_general_dilated(
      z, w2, stride[1:], [(p, p) for p in padding[1:]],
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return y.reshape((n, d_out) + y.shape[1:])


def jax_2d_fns(conv: Conv):
  """`jax_fns` for a 3-D convolution computed by `conv3d_as_2d`."""
  fwd3, _, (x, w) = jax_fns(conv)
  fwd = lambda x, w: conv3d_as_2d(x, w, conv.stride, conv.padding)
  np.testing.assert_allclose(np.asarray(jax.jit(fwd)(x, w)),
                             np.asarray(fwd3(x, w)), rtol=1e-3, atol=1e-3)
  g = jnp.ones(jax.eval_shape(fwd, x, w).shape, jnp.float32)
  argnums = (0, 1) if conv.input_grad else (1,)
  bwd = jax.jit(jax.grad(lambda x, w: jnp.vdot(fwd(x, w), g),
                         argnums=argnums))
  return jax.jit(fwd), bwd


def torch_fns(conv: Conv):
  """Forward and forward+backward of one convolution in PyTorch."""
  nd = len(conv.kernel)
  op = F.conv3d if nd == 3 else F.conv2d
  n, c = conv.shape[0], conv.shape[-1]
  rng = np.random.default_rng(0)
  x = torch.tensor(rng.normal(size=(n, c) + conv.shape[1:-1]),
                   dtype=torch.float32, requires_grad=conv.input_grad)
  w = torch.tensor(rng.normal(size=(conv.features, c) + conv.kernel) * 0.05,
                   dtype=torch.float32, requires_grad=True)

  def fwd():
    with torch.no_grad():
      return op(x, w, stride=conv.stride, padding=conv.padding)

  y = fwd()
  g = torch.tensor(rng.normal(size=tuple(y.shape)), dtype=torch.float32)

  def bwd():
    x.grad = w.grad = None
    op(x, w, stride=conv.stride, padding=conv.padding).backward(g)
  return fwd, bwd


def time_pair(fns, repeats: int) -> list[float]:
  """Median seconds of each function, run interleaved after one warm-up."""
  for fn in fns:
    fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, t in zip(fns, times):
      start = time.perf_counter()
      fn()
      t.append(time.perf_counter() - start)
  return [statistics.median(t) for t in times]


def _blocking(fn, *args):
  return lambda: jax.block_until_ready(fn(*args))


def _row(name: str, gflop: str, ms: np.ndarray) -> str:
  row = (f'{name:22s} {gflop:>6s} {ms[0]:8.1f} {ms[1]:9.1f} {ms[2]:8.1f} '
         f'{ms[3]:9.1f} {ms[3] / ms[2]:8.2f}×')
  if len(ms) > 4:
    row += f' {ms[4]:11.1f} {ms[5]:11.1f} {ms[3] / ms[5]:8.2f}×'
  return row


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
  three_d = len(convs[0].kernel) == 3
  head = (f'{"layer":22s} {"GFLOP":>6s} {"XLA fwd":>8s} {"torch fwd":>9s} '
          f'{"XLA f+b":>8s} {"torch f+b":>9s} {"torch/XLA":>9s}')
  if three_d:
    head += f' {"XLA 2-D fwd":>11s} {"XLA 2-D f+b":>11s} {"torch/2-D":>9s}'
  print(head)
  totals = np.zeros(6 if three_d else 4)
  for conv in convs:
    jf, jb, (x, w) = jax_fns(conv)
    tf, tb = torch_fns(conv)
    fns = [_blocking(jf, x, w), tf, _blocking(jb, x, w), tb]
    if three_d:
      fns += [_blocking(fn, x, w) for fn in jax_2d_fns(conv)]
    ms = 1e3 * np.array(time_pair(fns, args.repeats))
    totals += ms
    print(_row(conv.name, f'{conv.flops / 1e9:6.1f}', ms), flush=True)
  print(_row('total', '', totals))
  print(f'load after: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()
