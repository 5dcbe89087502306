r"""Train-step throughput and compile time, JAX vs PyTorch, for every model.

The JAX side is the trainer's own step, built by `experiment.build_training`
(`train_step.make_step_fn` mapped with `parallel.shard_step` over the visible
devices), with the loss and optimizer of the model's CASIA-B recipe
(``configs/<model>_casia_b.py``): OpenGait's
batch-all triplet loss, plus the cross-entropy term for GaitGL, Baseline and
GaitBase, and SGD (momentum 0.9) or Adam with PyTorch's L2 weight decay.

The PyTorch side is OpenGait's training step, written here from the
reference: the OpenGait-structured mirror of the same model
(``tests/torch_mirrors.py``) in train mode; its TripletLoss (per-part
distances by the expanded formula, the positive and negative distances taken
with boolean label masks and viewed as [p, n, K, 1] and [p, n, 1, n-K], every
triplet, the AvgNonZero reduction); its CrossEntropyLoss (scaled logits,
optional label smoothing, every part its own classifier); the loss
aggregator's weighted sum, ``loss.backward()``, the ``torch.optim`` step
(SGD or Adam with ``weight_decay``) and the ``MultiStepLR`` step. Nothing of
gait_jax's losses is used on this side. The mirror's part heads get
OpenGait's contiguous ``[p, n, c]`` layout before their batched matmuls
(`contiguous_heads`), as in OpenGait: PyTorch's CPU matmul of the strided
permutation is orders of magnitude slower.

Both sides get the same P×K batch of uint8 silhouettes (scaled to [0, 1]
inside the step), the same model configuration and the same hyper-parameters,
and run in this process, interleaved: after ``--warmup`` steps of each, every
repeat runs one JAX step and then one PyTorch step, so that both see the same
background load. Times are medians over ``--repeats`` steps; the JAX step is
timed until its outputs are ready, the PyTorch one until the optimizer step
returns (after ``torch.cuda.synchronize()`` on a GPU). PyTorch uses
``torch.set_num_threads(os.cpu_count())``; XLA's CPU backend uses all cores by
default. The batch is already on the device on both sides.

The JAX compile time is that of the first call: tracing, lowering and XLA
compilation of the sharded step. FLOPs per step are XLA's cost analysis of
the compiled step; model FLOP utilisation (MFU) is those FLOPs per second
over the device's peak (``--peak_tflops``, or a table of dense peaks for a
few accelerators: bfloat16, and TF32 for float32 on GPUs). The PyTorch
throughput in FLOP/s uses the same count.

Sizes (``--size``):
  cpu      P×K 4×4, 12 frames, num_classes 74, for a 2-core CPU in a few
           minutes: GaitSet, GaitPart and GaitGL at their CASIA-B sizes,
           Baseline and GaitBase with half of their CASIA-B channels (see
           `SIZES`).
  casia_b  the CASIA-B recipes: P×K 8×16 (GaitGL 8×8), 30 frames, the
           CASIA-B models (meant for an accelerator).

``--dtype=bfloat16`` sets the JAX compute dtype; PyTorch then runs under
``torch.autocast`` with bfloat16 on a GPU and stays in float32 on the CPU.

Usage:
  python benchmarks/train_bench.py [--size=cpu|casia_b]
      [--models=gaitset,gaitpart,gaitgl,baseline,gaitbase]
      [--dtype=float32|bfloat16] [--warmup=2] [--repeats=5]
      [--peak_tflops=X] [--update_docs]

``--update_docs`` writes the table into the ``## Train step`` section of
``docs/benchmarks.md`` (keeping its ``### Findings`` subsection).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import statistics
import sys
import textwrap
import time
import types
from typing import Any

# Both frameworks share an accelerator: JAX must not take most of its memory.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

import common  # pylint: disable=g-bad-import-order,wrong-import-position
import jax
import numpy as np
import torch
import torch.nn.functional as F

from gait_jax import experiment
from gait_jax import parallel

sys.path.append(os.path.join(common.REPO, 'tests'))
import torch_mirrors  # pylint: disable=g-bad-import-order,wrong-import-position
import torch_mirrors_deepgaitv2  # pylint: disable=g-bad-import-order,wrong-import-position

MODELS = ('gaitset', 'gaitpart', 'gaitgl', 'baseline', 'gaitbase',
          'deepgaitv2')
DOCS = os.path.join(common.REPO, 'docs', 'benchmarks.md')
SECTION = '## Train step (benchmarks/train_bench.py)'
FINDINGS = '### Findings'


@dataclasses.dataclass(frozen=True)
class Size:
  """Batch shape and model overrides of one benchmark size.

  Attributes:
    p: identities per batch (None: the recipe's).
    k: sequences per identity (None: the recipe's).
    frames: frames per sequence.
    num_classes: classifier size (CASIA-B has 74 training subjects).
    overrides: per model, attributes set over its CASIA-B variant.
    note: what differs from the CASIA-B recipe, for the report.
  """
  p: int | None
  k: int | None
  frames: int
  num_classes: int = 74
  overrides: dict[str, dict[str, Any]] = dataclasses.field(
      default_factory=dict)
  note: str = ''


SIZES = {
    'cpu': Size(
        p=4, k=4, frames=12,
        overrides={
            'baseline': dict(layers_cfg=('BC-32', 'BC-32', 'M', 'BC-64',
                                         'BC-64', 'M', 'BC-128', 'BC-128')),
            'gaitbase': dict(channels=(32, 64, 128, 256)),
        },
        note=('P×K 4×4, 12 frames; GaitSet, GaitPart, GaitGL at their '
              'CASIA-B sizes; Baseline and GaitBase with half of their '
              'CASIA-B channels (Baseline 32-64-128, GaitBase '
              '32-64-128-256).')),
    'casia_b': Size(
        p=None, k=None, frames=30,
        note='CASIA-B recipes: P×K 8×16 (GaitGL 8×8), 30 frames.'),
}

# Dense peak TFLOP/s per device (vendor datasheets): (bfloat16, float32).
# float32 on NVIDIA GPUs counts TF32 tensor cores, which XLA uses by default.
PEAK_TFLOPS = (
    ('H100 PCIe', (756.0, 378.0)),
    ('H100', (989.0, 495.0)),
    ('H200', (989.0, 495.0)),
    ('A100', (312.0, 156.0)),
    ('L4', (121.0, 60.0)),
    ('TPU v4', (275.0, 275.0)),
    ('TPU v5 lite', (197.0, 197.0)),
    ('TPU v5', (459.0, 459.0)),
    ('TPU v6 lite', (918.0, 918.0)),
)


@dataclasses.dataclass
class Result:
  """One model's numbers."""
  model: str
  batch: str
  params: int
  compile_s: float
  jax_s: float  # Median seconds per step.
  torch_s: float
  jax_best_s: float  # Fastest step.
  torch_best_s: float
  seqs: int  # Sequences per step.
  flops: float  # XLA FLOPs per step, all devices (-1: unknown).
  peak_tflops: float  # Per device (0: unknown).
  devices: int
  load: float  # 1-minute load average after the measurement.
  jax_loss: float
  torch_loss: float

  @property
  def jax_seq_s(self) -> float:
    return self.seqs / self.jax_s

  @property
  def torch_seq_s(self) -> float:
    return self.seqs / self.torch_s

  @property
  def ratio(self) -> float:
    return self.torch_s / self.jax_s

  @property
  def best_ratio(self) -> float:
    return self.torch_best_s / self.jax_best_s

  def tflops(self, seconds: float) -> float:
    return self.flops / seconds / 1e12 if self.flops > 0 else float('nan')

  @property
  def mfu(self) -> float:
    if self.flops <= 0 or self.peak_tflops <= 0:
      return float('nan')
    return self.tflops(self.jax_s) / (self.peak_tflops * self.devices)


# ----------------------------------------------------------------------------
# The batch.


def make_batch(p: int, k: int, frames: int, num_classes: int, seed: int = 0
               ) -> dict[str, np.ndarray]:
  """A P×K batch of walking-ellipse silhouettes, uint8 0/255 [n, s, 64, 44].

  Labels are P distinct identities, each repeated K times in a row (the P×K
  sampler's layout); every frame is real.
  """
  rng = np.random.default_rng(seed)
  n = p * k
  labels = np.repeat(rng.choice(num_classes, p, replace=False), k)
  y = np.arange(64, dtype=np.float32)[:, None]
  x = np.arange(44, dtype=np.float32)[None, :]
  phase = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
  t = np.arange(frames, dtype=np.float32)[None, :, None, None]
  centre = 22 + rng.uniform(-2, 2, (n, 1, 1, 1))
  half_width = 7 + 3 * np.abs(np.sin(phase + 0.4 * t)) * (y > 36)
  inside = ((x - centre) / half_width) ** 2 + ((y - 33) / 30) ** 2 < 1
  return {
      'sils': (255 * inside).astype(np.uint8),
      'labels': labels.astype(np.int32),
      'mask': np.ones((n, frames), bool),
  }


# ----------------------------------------------------------------------------
# JAX.


def recipe(name: str, size: Size, dtype: str):
  """The model's CASIA-B recipe config with the benchmark's batch shape."""
  config = importlib.import_module(f'configs.{name}_casia_b').get_config('')
  config.data.p = size.p or config.data.p
  config.data.k = size.k or config.data.k
  config.data.num_frames = size.frames
  config.train.compute_dtype = dtype
  config.model.update(size.overrides.get(name, {}))
  return config


class JaxStep:
  """The trainer's sharded step, compiled ahead of the first call."""

  def __init__(self, config, num_classes: int, host_batch):
    run = experiment.build_training(config, num_classes)
    self.devices = run.mesh.size
    self.model = run.model
    self.state = run.state
    self.params = run.num_params
    self.batch = parallel.host_to_global(run.mesh, host_batch)
    start = time.perf_counter()
    self.compiled = run.step.lower(self.state, self.batch).compile()
    self.compile_s = time.perf_counter() - start
    self.flops = _xla_flops(self.compiled) * self.devices
    self.metrics = None

  def __call__(self) -> None:
    self.state, self.metrics = self.compiled(self.state, self.batch)
    jax.block_until_ready((self.state, self.metrics))

  def loss(self) -> float:
    if float(self.metrics['finite']) < 1:
      return float('nan')
    return float(self.metrics['loss/total'])


def _xla_flops(compiled) -> float:
  """FLOPs per device of a compiled step (-1 if the backend gives none)."""
  try:
    cost = compiled.cost_analysis()
  except (NotImplementedError, RuntimeError):
    return -1.0
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', -1.0))


# ----------------------------------------------------------------------------
# PyTorch, OpenGait's training step.


def torch_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor,
                       margin: float) -> torch.Tensor:
  """OpenGait's TripletLoss: per-part AvgNonZero mean over all triplets.

  Args:
    embeddings: [n, c, p] (OpenGait's layout).
    labels: [n] identities of a P×K batch.
    margin: the triplet margin.

  Returns:
    [p] per-part losses.
  """
  e = embeddings.permute(2, 0, 1).contiguous().float()  # [p, n, c]
  sq = torch.sum(e * e, -1)  # [p, n]
  dist = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * e.matmul(e.transpose(1, 2))
  dist = torch.sqrt(F.relu(dist))  # [p, n, n]
  matches = labels.unsqueeze(1) == labels.unsqueeze(0)  # [n, n], incl. i = j
  diffs = ~matches
  p, n, _ = dist.shape
  ap = dist[:, matches].view(p, n, -1, 1)
  an = dist[:, diffs].view(p, n, 1, -1)
  loss = F.relu(ap - an + margin).view(p, -1)
  num = (loss != 0).sum(-1).float()
  avg = loss.sum(-1) / (num + 1e-9)
  return torch.where(num == 0, torch.zeros_like(avg), avg)


def torch_ce_loss(logits: torch.Tensor, labels: torch.Tensor, scale: float,
                  label_smoothing: float) -> torch.Tensor:
  """OpenGait's CrossEntropyLoss on logits [n, classes, p]: mean over n·p."""
  target = labels.unsqueeze(1).repeat(1, logits.shape[-1])  # [n, p]
  return F.cross_entropy(logits.float() * scale, target,
                         label_smoothing=label_smoothing)


def torch_model(name: str, model) -> torch.nn.Module:
  """The PyTorch mirror with the attributes of the Flax module ``model``."""
  m = model
  if name == 'gaitset':
    return torch_mirrors.GaitSet(tuple(m.in_channels), m.hidden_dim,
                                 tuple(m.bin_num))
  if name == 'gaitpart':
    assert len(m.bin_num) == 1 and m.squeeze == 4, (m.bin_num, m.squeeze)
    return torch_mirrors.GaitPart(tuple(m.layers_cfg), m.hidden_dim,
                                  m.bin_num[0])
  if name == 'gaitgl':
    assert m.structure == 'casia_b' and tuple(m.bin_num) == (64,), m
    return torch_mirrors.GaitGL(tuple(m.channels), m.num_classes)
  if name == 'baseline':
    return torch_mirrors.Baseline(tuple(m.layers_cfg), m.hidden_dim,
                                  m.num_classes, tuple(m.bin_num))
  if name == 'gaitbase':
    assert tuple(m.layers) == (1, 1, 1, 1), m.layers
    assert tuple(m.strides) == (1, 2, 2, 1), m.strides
    return torch_mirrors.GaitBase(tuple(m.channels), m.hidden_dim,
                                  m.num_classes, tuple(m.bin_num))
  if name == 'deepgaitv2':
    return torch_mirrors_deepgaitv2.DeepGaitV2(
        m.mode, tuple(m.layers), tuple(m.channels), m.num_classes)
  raise ValueError(name)


def _separate_fcs_forward(self, x: torch.Tensor) -> torch.Tensor:
  """OpenGait's SeparateFCs: [n, c, p] → [p, n, c], contiguous, @ fc_bin."""
  out = x.permute(2, 0, 1).contiguous().matmul(self.fc_bin)
  return out.permute(1, 2, 0).contiguous()


def _separate_bnnecks_forward(self, x: torch.Tensor):
  """OpenGait's SeparateBNNecks, with its contiguous part-major features."""
  n, c, p = x.shape
  x = self.bn1d(x.reshape(n, c * p)).reshape(n, c, p)
  feat = F.normalize(x.permute(2, 0, 1).contiguous(), dim=-1)  # [p, n, c]
  logits = feat.matmul(F.normalize(self.fc_bin, dim=1))  # [p, n, classes]
  return (feat.permute(1, 2, 0).contiguous(),
          logits.permute(1, 2, 0).contiguous())


def contiguous_heads(model: torch.nn.Module) -> torch.nn.Module:
  """Gives the mirror's part heads OpenGait's memory layout.

  OpenGait's SeparateFCs and SeparateBNNecks call ``.contiguous()`` on the
  permuted ``[p, n, c]`` features before the batched matmul; without it
  PyTorch's CPU matmul takes a strided path that is orders of magnitude
  slower. Values are unchanged.

  Args:
    model: a mirror module (changed in place).

  Returns:
    ``model``.
  """
  for m in model.modules():
    if isinstance(m, torch_mirrors.SeparateFCs):
      m.forward = types.MethodType(_separate_fcs_forward, m)
    elif isinstance(m, torch_mirrors.SeparateBNNecks):
      m.forward = types.MethodType(_separate_bnnecks_forward, m)
  return model


class TorchStep:
  """OpenGait's train step on the PyTorch mirror of a model."""

  def __init__(self, name: str, jax_model, config, host_batch, device: str,
               autocast_dtype: torch.dtype | None):
    self.device = device
    self.model = contiguous_heads(torch_model(name, jax_model))
    self.model = self.model.to(device).train()
    params = [q for q in self.model.parameters() if q.requires_grad]
    o = config.optim
    if o.name == 'sgd':
      self.optimizer = torch.optim.SGD(
          params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
          weight_decay=o.weight_decay)
    else:
      self.optimizer = torch.optim.Adam(
          params, lr=o.lr, betas=(o.b1, o.b2), eps=o.eps,
          weight_decay=o.weight_decay)
    assert config.schedule.name == 'multistep', config.schedule.name
    self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
        self.optimizer, list(config.schedule.milestones),
        config.schedule.gamma)
    self.loss_cfg = config.loss
    self.autocast_dtype = autocast_dtype
    self.sils = torch.from_numpy(host_batch['sils']).to(device)
    self.labels = torch.from_numpy(host_batch['labels']).long().to(device)
    self.params = sum(q.numel() for q in params)
    self.last_loss = None

  def __call__(self) -> None:
    self.optimizer.zero_grad()
    ctx = (torch.autocast(self.device, dtype=self.autocast_dtype)
           if self.autocast_dtype is not None else contextlib.nullcontext())
    with ctx:
      sils = self.sils.float() / 255.0
      out = self.model(([sils], self.labels, None, None, None))
    feat = out['training_feat']
    tri, ce = self.loss_cfg.triplet, self.loss_cfg.ce
    loss = tri.weight * torch_triplet_loss(
        feat['triplet']['embeddings'], self.labels, tri.margin).mean()
    if ce.weight > 0:
      loss = loss + ce.weight * torch_ce_loss(
          feat['softmax']['logits'], self.labels, ce.scale,
          ce.label_smoothing)
    loss.backward()
    self.optimizer.step()
    self.scheduler.step()
    if self.device == 'cuda':
      torch.cuda.synchronize()
    self.last_loss = loss.detach()

  def loss(self) -> float:
    return float(self.last_loss)


# ----------------------------------------------------------------------------
# Measurement and report.


def peak_tflops(dtype: str, override: float) -> float:
  """Per-device peak TFLOP/s: ``override``, else the table, else 0."""
  if override > 0:
    return override
  kind = getattr(jax.devices()[0], 'device_kind', '')
  for key, (bf16, fp32) in PEAK_TFLOPS:
    if key.lower() in kind.lower():
      return bf16 if dtype == 'bfloat16' else fp32
  return 0.0


def check_supported(name: str, size: Size) -> None:
  """Raises if the unsupported model options were asked for."""
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; valid: {", ".join(MODELS)}.')
  if name == 'gaitgl' and size.frames % 3:
    raise ValueError('GaitGL pools frames in threes: use a multiple of 3.')


def bench_model(name: str, size: Size, args, device: str) -> Result:
  """Compiles, warms up and times one model on both sides, interleaved."""
  config = recipe(name, size, args.dtype)
  host = make_batch(config.data.p, config.data.k, size.frames,
                    size.num_classes)
  jstep = JaxStep(config, size.num_classes, host)
  autocast = (torch.bfloat16 if args.dtype == 'bfloat16' and device == 'cuda'
              else None)
  tstep = TorchStep(name, jstep.model, config, host, device, autocast)
  if tstep.params != jstep.params:
    raise RuntimeError(f'{name}: {jstep.params} JAX parameters, '
                       f'{tstep.params} PyTorch parameters.')
  for _ in range(args.warmup):
    jstep()
    tstep()
  jax_times, torch_times = [], []
  for _ in range(args.repeats):
    for fn, times in ((jstep, jax_times), (tstep, torch_times)):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  n = config.data.p * config.data.k
  return Result(
      model=name,
      batch=f'{config.data.p}×{config.data.k}×{size.frames}',
      params=jstep.params, compile_s=jstep.compile_s,
      jax_s=statistics.median(jax_times),
      torch_s=statistics.median(torch_times), jax_best_s=min(jax_times),
      torch_best_s=min(torch_times), seqs=n, flops=jstep.flops,
      peak_tflops=peak_tflops(args.dtype, args.peak_tflops),
      devices=jstep.devices, load=os.getloadavg()[0],
      jax_loss=jstep.loss(), torch_loss=tstep.loss())


def _fmt(x: float, spec: str) -> str:
  return 'n/a' if x != x else format(x, spec)  # NaN -> n/a.


def table(results: list[Result]) -> str:
  """The results as a Markdown table."""
  rows = [
      '| model | P×K×frames | params | JAX compile s | JAX seq/s | '
      'PyTorch seq/s | JAX/PyTorch | JAX/PyTorch, fastest steps | '
      'GFLOP/step | JAX TFLOP/s | PyTorch TFLOP/s | MFU | load (1 min) |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in results:
    gflop = r.flops / 1e9 if r.flops > 0 else float('nan')
    rows.append(
        f'| {r.model} | {r.batch} | {r.params / 1e6:.2f} M | '
        f'{r.compile_s:.1f} | {r.jax_seq_s:.2f} | {r.torch_seq_s:.2f} | '
        f'{r.ratio:.2f}× | {r.best_ratio:.2f}× | {_fmt(gflop, ".0f")} | '
        f'{_fmt(r.tflops(r.jax_s), ".3f")} | '
        f'{_fmt(r.tflops(r.torch_s), ".3f")} | {_fmt(r.mfu, ".1%")} | '
        f'{r.load:.1f} |')
  return '\n'.join(rows)


def _wrap(text: str) -> str:
  return textwrap.fill(text, width=76, break_long_words=False,
                       break_on_hyphens=False)


def report(results: list[Result], args, size: Size, device: str,
           load_before: tuple[float, ...]) -> str:
  """The Markdown body of the docs section (and of the printout)."""
  load_after = os.getloadavg()
  cmd = ' '.join(['.venv/bin/python benchmarks/train_bench.py']
                 + sys.argv[1:])
  loads = lambda xs: ', '.join(f'{x:.1f}' for x in xs)
  setup = (
      f'Machine: {common.machine()}; PyTorch {torch.__version__} on '
      f'{device} with {torch.get_num_threads()} threads '
      f'(`torch.set_num_threads(os.cpu_count())`). Load average (1, 5, 15 '
      f'min): {loads(load_before)} before, {loads(load_after)} after. Size '
      f'`{args.size}`: {size.note} JAX compute dtype {args.dtype}; '
      f'{args.warmup} warm-up steps, then the median of {args.repeats} '
      'interleaved steps per side.')
  losses = 'Losses after the last step (JAX, PyTorch): ' + '; '.join(
      f'{r.model} {r.jax_loss:.3f}, {r.torch_loss:.3f}' for r in results) + '.'
  parts = [f'Command: `{cmd}`', _wrap(setup), table(results), _wrap(losses)]
  if jax.devices()[0].platform == 'cpu':
    met = all(r.ratio >= 1.0 for r in results)
    parts.append(_wrap(
        'Target: JAX ≥ 1.0× PyTorch on the CPU for every model: '
        f'{"met" if met else "not met"} (median ratios '
        f'{", ".join(f"{r.model} {r.ratio:.2f}×" for r in results)}).'))
  return '\n\n'.join(parts)


def update_docs(body: str, path: str = DOCS) -> None:
  """Replaces (or appends) this benchmark's section of the docs file.

  A ``### Findings`` subsection already in the section is kept.
  """
  text = ''
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      text = f.read()
  lines = text.splitlines()
  start = next((i for i, l in enumerate(lines) if l.strip() == SECTION),
               None)
  findings = []
  if start is None:
    before, after = lines, []
    if not before:
      before = ['# Benchmarks']
  else:
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith('## ')), len(lines))
    old = lines[start + 1:end]
    at = next((i for i, l in enumerate(old) if l.strip() == FINDINGS), None)
    if at is not None:
      findings = [''] + old[at:]
    before, after = lines[:start], lines[end:]
  while before and not before[-1].strip():
    before.pop()
  while findings and not findings[-1].strip():
    findings.pop()
  section = ['', SECTION, ''] + body.splitlines() + findings
  if after:
    section.append('')
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(before + section + after) + '\n')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--size', default='cpu', choices=sorted(SIZES))
  parser.add_argument('--models', default=','.join(MODELS),
                      help='Comma-separated subset of ' + ', '.join(MODELS))
  parser.add_argument('--dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='Peak TFLOP/s of one device for the MFU.')
  parser.add_argument('--conv_kernel_grad', default='auto',
                      choices=('auto', 'taps', 'xla'),
                      help='config.model.conv_kernel_grad: the kernel '
                      'gradient of the CPU-tuned 2-D convolutions.')
  parser.add_argument('--update_docs', action='store_true',
                      help='Write the results into docs/benchmarks.md.')
  args = parser.parse_args()
  size = SIZES[args.size]
  size = dataclasses.replace(size, overrides={
      name: {**size.overrides.get(name, {}),
             'conv_kernel_grad': args.conv_kernel_grad} for name in MODELS})
  names = [m.strip() for m in args.models.split(',') if m.strip()]
  for name in names:
    check_supported(name, size)

  torch.set_num_threads(os.cpu_count())
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  load_before = os.getloadavg()
  print(f'machine: {common.machine()}')
  results = []
  for name in names:
    torch.manual_seed(0)
    r = bench_model(name, size, args, device)
    print(f'{name}: compile {r.compile_s:.1f} s, JAX {r.jax_seq_s:.2f} '
          f'seq/s, PyTorch {r.torch_seq_s:.2f} seq/s, '
          f'JAX/PyTorch {r.ratio:.2f}x (load {r.load:.1f})', flush=True)
    results.append(r)
  body = report(results, args, size, device, load_before)
  print()
  print(body)
  if args.update_docs:
    update_docs(body)
    print(f'\nWrote the section {SECTION!r} of {DOCS}.')


if __name__ == '__main__':
  main()
