"""Per-device train-step memory of every recipe, and the devices it needs.

For every config in configs/ (but the synthetic demo and the GIL authors'
GaitGL variant) at its real P×K batch, compiles the sharded train step as
``launch.py --mode=compile`` does (``gait_jax.aot``), in float32 and
bfloat16, without and with ``model.remat='blocks'``, and prints a markdown
table of the per-device peak (arguments + outputs + temporaries) and the
smallest device count that fits 16, 24, 40 and 80 GB devices:

  .venv/bin/python scripts/memory_table.py [--update_docs]

The script sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
itself, so meshes of up to 8 CPU devices compile.

Measurement and scaling rule. Each variant is compiled on the 8-device mesh
at the real global batch B (a per-device share of B/8 sequences); each
recipe once more, in float32 without remat, at a global batch of 8 (one
sequence per device). The per-device peak is taken as linear in the share
n = B/d: ``peak(n) = peak(1) + (n - 1) * slope``, the slope through the two
compiles. The share-independent part (parameters, optimizer state,
gradients, their all-reduce) is what the 1-sequence compile measures (one
sequence's activations differ by dtype and remat by well under 0.1 GiB);
the activations, and the metric losses' pair work (each device's anchors
against the global batch), scale with n. This gives the peak for d = 1, 2,
4 (larger shares) and d > 8 (extrapolated); ``--check`` compiles one recipe
at d = 2 to test the rule.

Measured with the CPU compiler (XLA:CPU): it runs bfloat16 convolutions in
float32 (docs/benchmarks.md), so its bfloat16 figures overstate GPU/TPU
memory. The default ``--ops=reference`` compiles the stock convolutions and
pools that GPUs and TPUs run (the CPU-tuned forms copy inputs).
"""

from __future__ import annotations

import json
import os
import sys
import time

FLAG = '--xla_force_host_platform_device_count=8'
if FLAG.split('=', maxsplit=1)[0] not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {FLAG}'

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import importlib

import jax

from gait_jax import aot
from gait_jax import models
# pylint: enable=g-import-not-at-top,wrong-import-position

SKIP = ('synthetic_demo', 'gaitgl_casia_b_gil_authors', 'common', '__init__')
DTYPES = ('float32', 'bfloat16')
REMATS = ('none', 'blocks')
CAPACITIES_GB = (16, 24, 40, 80)
DEVICE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128)
MEASURED_DEVICES = 8
DOCS = os.path.join(REPO, 'docs', 'benchmarks.md')
BEGIN, END = '<!-- memory_table:begin -->', '<!-- memory_table:end -->'
SECTION = '## Train-step memory per device (scripts/memory_table.py)'

_CONFIGS = flags.DEFINE_list('configs', None, 'Config names (default: all).')
_OPS = flags.DEFINE_string('ops', 'reference', 'config.model.ops.')
_USABLE = flags.DEFINE_float(
    'usable', 0.9, 'Fraction of a device\'s memory the step may use.')
_RESULTS = flags.DEFINE_string(
    'results', os.path.join(REPO, 'workdirs', 'memory_table.json'),
    'Measurements cache (reused; delete it to measure again).')
_UPDATE_DOCS = flags.DEFINE_bool(
    'update_docs', False, f'Replace the marked section of {DOCS}.')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Compile nothing: tabulate the cached results.')
_CHECK = flags.DEFINE_string(
    'check', 'gaitset_casia_b', 'Compile this config (float32, no remat) at '
    '2 devices too, to test the scaling rule ("" = none).')


def config_names() -> list[str]:
  names = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, 'configs'))
                 if f.endswith('.py'))
  return [n for n in names if n not in SKIP]


def load_config(name: str, dtype: str, remat: str, devices: int,
                global_batch: int | None = None):
  """The recipe of ``configs/<name>.py`` set up for one compile."""
  config = importlib.import_module(f'configs.{name}').get_config('')
  model = models.get_model(config.model.name, variant=config.model.variant)
  config.model.num_classes = int(getattr(model, 'num_classes', None) or 1)
  config.model.ops = _OPS.value
  config.model.remat = remat
  config.train.compute_dtype = dtype
  config.train.num_devices = devices
  if global_batch is not None:  # 8 = P×K 2×4 (compiled, never run).
    config.data.p, config.data.k = global_batch // 4, 4
  return config


def measure(name: str, dtype: str, remat: str, devices: int,
            global_batch: int | None = None) -> dict[str, float]:
  """Compiles one train step; its per-device bytes and the compile time."""
  config = load_config(name, dtype, remat, devices, global_batch)
  report = aot.compile_train_step(config, config.model.num_classes)
  return {'batch': report.global_batch, 'devices': report.devices,
          'params': report.num_params, 'peak': report.peak_bytes,
          'temp': report.temp_bytes, 'seconds': report.compile_seconds}


def _key(*parts) -> str:
  return '/'.join(str(p) for p in parts)


def collect(names: list[str], cache: dict[str, dict]) -> dict[str, dict]:
  """Measures what the cache lacks (saving it after every compile)."""
  jobs = []
  for n in names:  # bfloat16 without remat last: the least informative.
    jobs.append((n, 'float32', 'none', MEASURED_DEVICES, MEASURED_DEVICES))
    jobs += [(n, dt, r, MEASURED_DEVICES, None) for dt, r in (
        ('float32', 'none'), ('float32', 'blocks'), ('bfloat16', 'blocks'))]
  if _CHECK.value:
    jobs.append((_CHECK.value, 'float32', 'none', 2, None))
  jobs += [(n, 'bfloat16', 'none', MEASURED_DEVICES, None) for n in names]
  for job in jobs:
    key = _key(_OPS.value, *job)
    if key in cache:
      continue
    start = time.perf_counter()
    cache[key] = measure(*job)
    print(f'{key}: peak {cache[key]["peak"] / 2**30:.2f} GiB '
          f'({time.perf_counter() - start:.0f} s)', file=sys.stderr,
          flush=True)
    os.makedirs(os.path.dirname(_RESULTS.value), exist_ok=True)
    with open(_RESULTS.value, 'w', encoding='utf-8') as f:
      json.dump(cache, f, indent=1, sort_keys=True)
  return cache


def model_of(cache, name, dtype, remat):
  """(global batch B, peak(share) function) of one variant; None if it was
  not measured."""
  full = cache.get(_key(_OPS.value, name, dtype, remat, MEASURED_DEVICES,
                        None))
  one = cache.get(_key(_OPS.value, name, 'float32', 'none', MEASURED_DEVICES,
                       MEASURED_DEVICES))
  if full is None or one is None:
    return None
  share_full = full['batch'] / MEASURED_DEVICES
  slope = (full['peak'] - one['peak']) / max(share_full - 1, 1)
  return full['batch'], lambda share: one['peak'] + (share - 1) * slope


def devices_needed(batch: int, peak, capacity_gb: float) -> str:
  """Smallest device count whose per-device peak fits; '*' = extrapolated
  beyond the 8 measured devices."""
  limit = _USABLE.value * capacity_gb * 1e9
  for d in DEVICE_COUNTS:
    if batch % d == 0 and peak(batch / d) <= limit:
      return f'{d}*' if d > MEASURED_DEVICES else str(d)
  return '—'


def gib(b: float) -> str:
  return f'{b / 2**30:.1f}'


def table(names: list[str], cache: dict[str, dict]) -> str:
  """The markdown table and the target lines."""
  head = ('| config | B | dtype | remat | GiB/device at d=1 | at d=8 | '
          + ' | '.join(f'devices for {c} GB' for c in CAPACITIES_GB) + ' |')
  rows = [head, '|' + '---|' * 4 + '---:|' * (2 + len(CAPACITIES_GB))]
  targets = []
  for name in names:
    for dtype in DTYPES:
      for remat in REMATS:
        if model_of(cache, name, dtype, remat) is None:
          continue  # Not measured (an interrupted run).
        batch, peak = model_of(cache, name, dtype, remat)
        need = [devices_needed(batch, peak, c) for c in CAPACITIES_GB]
        rows.append(f'| {name} | {batch} | {dtype} | {remat} | '
                    f'{gib(peak(batch))} | {gib(peak(batch / 8))} | '
                    + ' | '.join(need) + ' |')
        if dtype == 'bfloat16':
          targets.append((name, remat, need))
  return '\n'.join(rows), targets


def target_lines(targets) -> list[str]:
  """Whether the GPU/TPU-readiness targets are met, per remat setting."""
  lines = []
  for remat in REMATS:
    casia = [(n, need[1]) for n, r, need in targets
             if r == remat and 'casia_b' in n]
    big = [(n, need[0]) for n, r, need in targets
           if r == remat and ('oumvlp' in n or 'grew' in n)]
    miss_c = [f'{n} ({d})' for n, d in casia if d != '1']
    miss_b = [f'{n} ({d})' for n, d in big
              if d.rstrip('*') == '—' or int(d.rstrip('*')) > 8]
    lines.append(
        f'* remat={remat}: CASIA-B on one 24 GB device in bfloat16: '
        f'{len(casia) - len(miss_c)}/{len(casia)} '
        f'({"met" if not miss_c else "missed by " + ", ".join(miss_c)}); '
        f'OUMVLP/GREW on 8 devices of 16 GB: {len(big) - len(miss_b)}/'
        f'{len(big)} ({"met" if not miss_b else "missed by " + ", ".join(miss_b)}).')
  return lines


def check_line(cache) -> str:
  measured = cache.get(_key(_OPS.value, _CHECK.value, 'float32', 'none', 2,
                            None))
  if not _CHECK.value or measured is None:
    return ''
  batch, peak = model_of(cache, _CHECK.value, 'float32', 'none')
  predicted = peak(batch / 2)
  return (f'Scaling check: {_CHECK.value}, float32, 2 devices (share '
          f'{batch // 2}): predicted {gib(predicted)} GiB, compiled '
          f'{gib(measured["peak"])} GiB '
          f'({100 * (predicted / measured["peak"] - 1):+.1f} %).')


def render(names, cache) -> str:
  body, targets = table(names, cache)
  seconds = sum(v['seconds'] for v in cache.values())
  platform = jax.devices()[0].platform
  return '\n'.join([
      BEGIN, '',
      f'Command: `.venv/bin/python scripts/memory_table.py --update_docs` '
      f'(`--ops={_OPS.value}`, {platform} compiler, '
      f'{len(cache)} compiles, {seconds / 60:.0f} min of compilation, JAX '
      f'{jax.__version__}).', '',
      'Per-device peak = arguments + outputs + temporaries of the compiled '
      'sharded train step (forward, backward, update). B = P×K global '
      'batch; `d` = data-parallel devices, each holding B/d sequences. '
      'Compiled on 8 CPU devices at B, and at B = 8 (float32, no remat) '
      'for the share-independent part; other device counts scale the '
      'per-device share linearly (module docstring of the script); `*` = more than the 8 compiled devices (extrapolated), '
      f'— = not within {DEVICE_COUNTS[-1]} devices. A device fits when '
      f'the peak is at most {_USABLE.value:.0%} of its memory (JAX '
      'preallocates 75 % of a GPU by default: set '
      '`XLA_PYTHON_CLIENT_MEM_FRACTION=.9`).', '',
      body, '', check_line(cache), '',
      'Targets (bfloat16 rows; CPU compiler, so an upper bound):', '',
      *target_lines(targets), '',
      '**CPU-compiler caveat.** XLA:CPU has no bfloat16 convolution: it '
      'converts their operands to float32 and keeps both copies, so the '
      'bfloat16 rows here save little over float32 and for the ResNet-style '
      'models exceed it, where a GPU (cuDNN) or TPU runs the convolutions '
      'in bfloat16 and stores about half the float32 activations. Read the '
      'larger of the two rows as the upper '
      'bound for both dtypes until `benchmarks/device_check.py` has '
      'measured an accelerator. Remat is measured with XLA:CPU\'s '
      '`cse_barrier_expander` pass off (`gait_jax.models.remat`); with it '
      'on, XLA:CPU merges the recomputation back into the forward pass and '
      'remat saves nothing on CPUs.', '', END])


def update_docs(block: str, path: str = DOCS) -> None:
  """Replaces the marked block, or adds the section before '## Protocols'."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  if BEGIN in text and END in text:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    text = text[:start] + block + text[end:]
  else:
    at = text.index('## Protocols')
    text = f'{text[:at]}{SECTION}\n\n{block}\n\n{text[at:]}'
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)


def main(argv):
  del argv
  names = _CONFIGS.value or config_names()
  cache = {}
  if os.path.exists(_RESULTS.value):
    with open(_RESULTS.value, encoding='utf-8') as f:
      cache = json.load(f)
  if not _REPORT_ONLY.value:
    cache = collect(names, cache)
  block = render(names, cache)
  print(block)
  if _UPDATE_DOCS.value:
    update_docs(block)


if __name__ == '__main__':
  app.run(main)
