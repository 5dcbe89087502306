"""The experiment configs: arguments, OpenGait's numbers, and a smoke run each.

The expected values below are OpenGait's training configs (its
``configs/<model>/*.yaml`` over ``default.yaml``) and model-zoo rank-1, and
the GIL authors' GaitGL recipe, written out independently of ``configs/``.
"""

import importlib.util
import json
import math
import os

from absl import flags
from ml_collections import config_flags
import pytest

from gait_jax import commands
from gait_jax import config as config_lib
from gait_jax import losses
from gait_jax import models
from gait_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, 'configs')

SGD, ADAM = ('sgd', 0.1, 0.9), ('adam', 1e-4, None)
ADAMW = ('adamw', 3e-4, None)
# name: optimizer (name, lr, momentum), weight decay, milestones, steps,
# (P, K), (frame sampler, skip), batch_shuffle, CE (weight, scale, smoothing)
# or None, (eval batch, frame limit), reference rank-1 (NM, BG, CL or one).
REFERENCE = {
    'gaitset_casia_b': (SGD, 5e-4, (10_000, 20_000, 30_000), 40_000, (8, 16),
                        ('fixed_unordered', 0), False, None, (16, 0),
                        ('95.8', '90.0', '75.4')),
    'gaitset_oumvlp': (ADAM, 0.0, (150_000,), 250_000, (32, 16),
                       ('fixed_unordered', 0), False, None, (4, 0),
                       ('87.2',)),
    'gaitpart_casia_b': (ADAM, 0.0, (100_000,), 120_000, (8, 16),
                         ('fixed_ordered', 10), False, None, (16, 0),
                         ('96.1', '90.7', '78.7')),
    'gaitpart_oumvlp': (ADAM, 0.0, (150_000,), 250_000, (32, 16),
                        ('fixed_ordered', 10), False, None, (4, 0),
                        ('88.6',)),
    'gaitgl_casia_b': (ADAM, 5e-4, (70_000,), 80_000, (8, 8),
                       ('fixed_ordered', 0), True, (1.0, 1.0, 0.0), (4, 0),
                       ('97.4', '94.5', '83.8')),
    'gaitgl_oumvlp': (ADAM, 0.0, (150_000, 200_000), 210_000, (32, 8),
                      ('fixed_ordered', 0), True, (1.0, 1.0, 0.1), (2, 0),
                      ('89.9',)),
    'baseline_casia_b': (SGD, 5e-4, (20_000, 40_000), 60_000, (8, 16),
                         ('fixed_unordered', 0), True, (0.1, 16.0, 0.1),
                         (16, 720), ('96.3', '92.2', '77.6')),
    'baseline_oumvlp': (SGD, 5e-4, (50_000, 100_000), 150_000, (32, 16),
                        ('fixed_unordered', 0), True, (0.1, 16.0, 0.1),
                        (4, 720), ('86.7',)),
    'gaitbase_casia_b': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                         (8, 16), ('fixed_unordered', 0), True,
                         (1.0, 16.0, 0.1), (16, 720), ('97.6', '94.0', '77.4')),
    'gaitbase_oumvlp': (SGD, 5e-4, (60_000, 80_000, 100_000), 120_000,
                        (32, 8), ('fixed_unordered', 0), True,
                        (1.0, 16.0, 0.1), (16, 720), ('90.8',)),
    'deepgaitv2_casia_b': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                           (8, 16), ('fixed_ordered', 4), True,
                           (1.0, 16.0, 0.1), (4, 720), ()),
    'deepgaitv2_oumvlp': (SGD, 5e-4, (60_000, 80_000, 100_000), 120_000,
                          (32, 8), ('fixed_ordered', 4), True,
                          (1.0, 16.0, 0.1), (4, 720), ('92.0',)),
    'deepgaitv2_gait3d': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                          (32, 4), ('fixed_ordered', 4), True,
                          (1.0, 16.0, 0.1), (4, 720), ('74.4',)),
    'deepgaitv2_grew': (SGD, 5e-4, (80_000, 120_000, 150_000), 180_000,
                        (32, 4), ('fixed_ordered', 4), True,
                        (1.0, 16.0, 0.1), (4, 720), ('79.4',)),
    'deepgaitv2_ccpg': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                        (8, 16), ('fixed_ordered', 4), True,
                        (1.0, 16.0, 0.1), (4, 720), ()),
    'deepgaitv2_sustech1k': (SGD, 5e-4, (20_000, 30_000, 40_000), 50_000,
                             (8, 8), ('fixed_ordered', 4), True,
                             (1.0, 16.0, 0.1), (4, 720),
                             ('87.5', '53.4', '28.8', '82.4', '92.6')),
    'gaitbase_gait3d': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                        (32, 4), ('unfixed_unordered', 0), True,
                        (1.0, 16.0, 0.1), (16, 720), ('64.6',)),
    'gaitbase_grew': (SGD, 5e-4, (80_000, 120_000, 150_000), 180_000,
                      (32, 4), ('unfixed_unordered', 0), True,
                      (1.0, 16.0, 0.1), (16, 720), ('60.1',)),
    'gaitbase_ccpg': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                      (8, 16), ('fixed_unordered', 0), True,
                      (1.0, 16.0, 0.1), (16, 720), ()),
    'gaitbase_casia_e': (SGD, 5e-4, (20_000, 40_000, 50_000), 60_000,
                         (8, 32), ('fixed_unordered', 0), True,
                         (1.0, 16.0, 0.1), (16, 720),
                         ('91.59', '86.65', '74.73')),
    'trackletgait_gait3d': (SGD, 5e-4, (40_000, 80_000, 100_000), 120_000,
                            (32, 4), ('tracklet', 0), True, (1.0, 16.0, 0.1),
                            (2, 720), ('77.8', '70.2')),
    'trackletgait_grew': (SGD, 5e-4, (40_000, 80_000, 100_000), 120_000,
                          (32, 4), ('tracklet', 0), True, (1.0, 16.0, 0.1),
                          (2, 720), ('80.4',)),
    # Stepped cosine and parameter groups (checked separately).
    'swingait_gait3d': (ADAMW, 0.02, (), 80_000, (32, 4),
                        ('fixed_ordered', 4), True, (1.0, 16.0, 0.1),
                        (4, 720), ('75.0',)),
    # The GIL authors' GaitGL (cosine schedule, checked separately).
    'gaitgl_casia_b_gil_authors': (SGD, 5e-4, (), 80_000, (8, 8),
                                   ('fixed_ordered', 0), True, None, (4, 0),
                                   ('96.4', '95.0', '89.8')),
}
NAMES = sorted(REFERENCE)
# Frames per training clip where it is not 30: num_frames, or the
# unfixed_unordered (min, max) range (clips padded to max).
FRAMES = {'deepgaitv2_sustech1k': 10, 'gaitbase_gait3d': (10, 50),
          'gaitbase_grew': (20, 40), 'trackletgait_gait3d': 32,
          'trackletgait_grew': 32}
# OpenGait's DeepGaitV2 and GaitBase-DA training transforms: RandomPerspective,
# RandomHorizontalFlip and RandomRotate, each with probability 0.2.
DA = dict(perspective_prob=0.2, hflip_prob=0.2, rotate_prob=0.2,
          rotate_degree=10.0)
WITH_DA = {n for n in REFERENCE if n.startswith(('deepgaitv2_',
                                                 'trackletgait_',
                                                 'swingait_'))} | {
    'gaitbase_gait3d', 'gaitbase_grew'}
# TrackletGait's Hardness-Exclusion triplet.
HARD_EXCLUSION = {n for n in REFERENCE if n.startswith('trackletgait_')}


def dataset_of(name: str) -> str:
  """'gaitbase_casia_e' -> 'casia_e' (the model variant and dataset)."""
  return name.split('_', 1)[1].replace('_gil_authors', '')
DEFAULT_PRESET = {'gaitgl_casia_b_gil_authors': 'gil_rc'}
GOOD_ARGS = {'': None, 'triplet': 'triplet', 'gil_rc': 'gil_rc', 'gil': 'gil',
             'smoke': None, 'gil,smoke': 'gil', ' smoke , gil_rc ': 'gil_rc'}
BAD_ARGS = ('gil_r', 'smoke,fast', 'gil,gil_rc', 'smoke,smoke', 'runlocal')


def load(name: str, arg: str = ''):
  path = os.path.join(CONFIG_DIR, f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module, module.get_config(arg)


def _keys(config, prefix=''):
  out = set()
  for key, value in config.items():
    out.add(prefix + key)
    if hasattr(value, 'items'):
      out |= _keys(value, f'{prefix}{key}.')
  return out


def test_every_model_and_dataset_has_a_config():
  files = {f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith('.py')}
  files -= {'__init__', 'common', 'synthetic_demo', 'synthetic_wild'}
  assert files == set(NAMES)
  assert {n.split('_')[0] for n in NAMES} == set(models.model_names())


@pytest.mark.parametrize('name', NAMES)
def test_loads_with_every_argument(name):
  base_keys = _keys(config_lib.base_config())
  for arg, preset in GOOD_ARGS.items():
    _, c = load(name, arg)
    c.lock()
    assert _keys(c) == base_keys, arg  # Strict: the schema's keys only.
    assert c.loss.preset == (preset or DEFAULT_PRESET.get(name, 'triplet'))
    losses.validate_loss_config(c.loss)
    models.get_model(c.model.name, c.model.variant)
    assert ('smoke' in arg) == (c.model.variant == 'tiny'), arg


@pytest.mark.parametrize('name', NAMES)
def test_bad_argument_names_the_valid_tokens(name):
  module, _ = load(name)
  for arg in BAD_ARGS:
    with pytest.raises(ValueError, match='valid tokens') as err:
      module.get_config(arg)
    for token in ('triplet', 'gil_rc', 'gil', 'smoke'):
      assert token in str(err.value), (arg, str(err.value))


@pytest.mark.parametrize('name', NAMES)
def test_values_match_the_reference(name):
  ((opt, lr, momentum), wd, milestones, steps, pk, (sampler, skip), shuffle,
   ce, (eval_batch, frame_limit), _) = REFERENCE[name]
  _, c = load(name)
  assert c.model.name == name.split('_')[0]
  assert c.model.variant == dataset_of(name)
  assert c.model.num_classes == -1
  assert (c.optim.name, c.optim.lr, c.optim.weight_decay) == (opt, lr, wd)
  if momentum is not None:
    assert (c.optim.momentum, c.optim.nesterov) == (momentum, False)
  else:
    assert (c.optim.b1, c.optim.b2, c.optim.eps) == (0.9, 0.999, 1e-8)
  assert tuple(c.schedule.milestones) == milestones
  assert c.train.num_steps == steps
  assert (c.data.p, c.data.k) == pk
  assert (c.data.frame_sampler, c.data.frames_skip) == (sampler, skip)
  frames = FRAMES.get(name, 30)
  if isinstance(frames, tuple):
    assert tuple(c.data.frames_range) == frames
    assert c.data.num_frames == frames[1]
  else:
    assert c.data.num_frames == frames
  if name in WITH_DA:
    for key, value in DA.items():
      assert c.data.augment[key] == value, key
    assert c.data.augment.erase_prob == 0.0
  assert c.data.batch_shuffle is shuffle
  assert c.loss.triplet.weight == 1.0 and c.loss.triplet.margin == 0.2
  assert c.loss.triplet.hard_exclusion is (name in HARD_EXCLUSION)
  if ce is None:
    assert c.loss.ce.weight == 0.0
  else:
    assert (c.loss.ce.weight, c.loss.ce.scale,
            c.loss.ce.label_smoothing) == ce
  assert (c.eval.batch_size, c.eval.frame_limit) == (eval_batch, frame_limit)
  assert c.data.source == 'tfds'
  assert c.data.dataset_dir == f'data/{dataset_of(name)}/1.0.0'
  assert c.train.compute_dtype == 'float32'


@pytest.mark.parametrize('name', NAMES)
def test_docstring_gives_command_reference_and_hardware(name):
  module, _ = load(name)
  doc = module.__doc__
  assert f'python launch.py --config=configs/{name}.py' in doc
  assert 'Hardware' in doc and 'rank-1' in doc
  for number in REFERENCE[name][-1]:
    assert number in doc, number


def test_gil_authors_recipe():
  _, c = load('gaitgl_casia_b_gil_authors')
  assert c.schedule.name == 'cosine'
  assert (c.schedule.warmup_steps, c.schedule.warmup_init_lr,
          c.schedule.min_lr) == (2_000, 1e-6, 1e-4)
  assert c.loss.triplet.pair_weight and c.loss.triplet.weight_norm == 'global'
  assert c.loss.pair_softmax.weight == 0.0
  assert c.loss.uniformity.weight == 0.0
  _, plain = load('gaitgl_casia_b_gil_authors', 'triplet')
  assert not plain.loss.triplet.pair_weight


def test_swingait_recipe():
  # OpenGait SwinGait: get_optimizer groups, adjust_learning_rate, restore.
  _, c = load('swingait_gait3d')
  assert dict(c.schedule) | {'milestones': ()} == dict(
      c.schedule, name='stepped_cosine', total_steps=60_000, step_every=1000,
      min_lr=1e-6, milestones=())
  groups = {g[0]: g[1:] for g in c.optim.param_groups}
  assert groups == {
      r'^transformer/.*(patch_embed|norm|relative_position_bias_table)':
          (1.0, 0.0),
      r'^(layer[0-4]|FCs|BNNecks)/': (0.1, None)}
  assert c.train.init_from and not c.train.init_from_strict
  assert c.data.cut_width is False  # BaseSilTransform: 64×64 frames.
  _, smoke = load('swingait_gait3d', 'smoke')
  assert smoke.train.init_from == ''
  assert 0 < smoke.schedule.total_steps < smoke.train.num_steps


def test_gaitgl_oumvlp_gil_rc_adds_the_pair_softmax_term():
  # The GIL authors' OUMVLP loss: weighted triplet + pair-softmax + CE.
  _, c = load('gaitgl_oumvlp', 'gil_rc')
  assert c.loss.pair_softmax.weight == 1.0 and c.loss.ce.weight == 1.0
  for arg in ('', 'gil'):
    assert load('gaitgl_oumvlp', arg)[1].loss.pair_softmax.weight == 0.0


@pytest.mark.parametrize('name', NAMES)
def test_smoke_is_small_and_keeps_the_recipe(name):
  _, full = load(name)
  _, c = load(name, 'smoke')
  assert c.data.source == 'synthetic'
  assert c.data.synthetic.num_train_subjects >= c.data.p
  assert c.data.p * c.data.k <= 8 and c.data.num_frames <= 8
  assert c.train.num_steps <= 20 and c.train.log_every <= 5
  assert c.data.dataset_dir == full.data.dataset_dir  # For source=tfds.
  # Milestones and warm-up shrink with the run, in order, inside it.
  assert all(0 < m < c.train.num_steps for m in c.schedule.milestones)
  assert len(c.schedule.milestones) == len(full.schedule.milestones)
  assert c.schedule.warmup_steps <= c.train.num_steps
  for section in ('optim', 'loss'):
    assert c[section].to_dict() == full[section].to_dict()


def _parse_flags(*args):
  argv = ['prog', *args]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=fv,
                                  lock_config=True, sys_argv=argv)
  fv(argv)
  return fv.config


def test_launcher_flags_parse_arguments_and_reject_unknown_keys():
  path = os.path.join(CONFIG_DIR, 'gaitgl_casia_b.py')
  c = _parse_flags(f'--config={path}:gil,smoke', '--config.train.num_steps=3')
  assert c.loss.preset == 'gil' and c.train.num_steps == 3
  with pytest.raises(AttributeError, match='lrr'):
    _parse_flags(f'--config={path}', '--config.optim.lrr=0.1')


# One smoke training per model. The model's other config trains the same
# tiny model on the same smoke batch; it differs only in optimizer, schedule
# and loss numbers, which the runs below cover between them (SGD and Adam;
# triplet, pair weights, pair-softmax, uniformity, CE with and without
# smoothing).
SMOKE_RUNS = {
    'gaitset': ('gaitset_oumvlp', 'smoke'),
    'gaitpart': ('gaitpart_casia_b', 'gil_rc,smoke'),
    'gaitgl': ('gaitgl_oumvlp', 'gil_rc,smoke'),
    'baseline': ('baseline_casia_b', 'gil,smoke'),
    'gaitbase': ('gaitbase_gait3d', 'smoke'),  # unfixed_unordered, DA.
    'deepgaitv2': ('deepgaitv2_gait3d', 'gil,smoke'),
    'trackletgait': ('trackletgait_gait3d', 'smoke'),  # tracklet, HardEx.
    'swingait': ('swingait_gait3d', 'smoke'),  # AdamW groups, init_from off.
}


# GaitPart, GaitGL and Baseline smoke runs are `slow`: their train steps are
# covered by the model and parity tests, their configs by the checks above.
_SMOKE_FAST = ('gaitset', 'gaitbase', 'deepgaitv2')


@pytest.mark.parametrize('model', [
    m if m in _SMOKE_FAST else pytest.param(m, marks=pytest.mark.slow)
    for m in sorted(SMOKE_RUNS)])
def test_smoke_config_trains(model, tiny_dataset, tmp_path):
  name, arg = SMOKE_RUNS[model]
  _, c = load(name, arg)
  for other in NAMES:
    if other.split('_')[0] == model:
      _, sibling = load(other, 'smoke')
      assert sibling.model.to_dict() == c.model.to_dict()
      assert (sibling.data.p, sibling.data.k, sibling.data.num_frames) == (
          c.data.p, c.data.k, c.data.num_frames)
  c.data.source = 'tfds'
  c.data.dataset_dir = tiny_dataset
  c.train.num_steps = 2
  c.train.eval_at_end = False
  c.lock()
  state = train.train(c, str(tmp_path))
  assert int(state.step) == 2, f'{name}:{arg}'
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert rows[-1]['step'] == 2
  assert rows[-1]['finite'] == 1.0, f'{name}:{arg}: {rows[-1]}'
  assert math.isfinite(rows[-1]['loss/total']), f'{name}:{arg}: {rows[-1]}'


def test_synthetic_wild_trains_and_scores_its_probe_set(tmp_path):
  from data_prep import prepare  # pylint: disable=g-import-not-at-top
  module, c = load('synthetic_wild')
  assert module.get_config('gil').loss.preset == 'gil'
  assert c.model.name == 'deepgaitv2' and c.data.source == 'synthetic_wild'
  c.data.data_dir = str(tmp_path / 'data')
  c.data.synthetic_wild.update(dict(
      num_subjects=6, num_train_subjects=4, min_sequences=2, max_sequences=3,
      min_frames=10, max_frames=14, mean_frames=12.0))
  c.data.p, c.data.k, c.data.num_frames = 2, 2, 6
  c.train.num_steps = 2
  c.eval.buckets = (16,)
  c.eval.plots = False
  c.lock()
  prepare.prepare_dataset(c)
  assert commands.run_train(c, str(tmp_path / 'w')) == 0
  report = json.load(open(tmp_path / 'w' / 'eval_latest.json'))
  assert set(report['summary']) == {'rank-1', 'rank-5', 'rank-10', 'mAP',
                                    'mINP'}
  assert all(0 <= v <= 100 for v in report['summary'].values())
  # Scored against the dataset's own probe set (one probe per test
  # subject), not the real Gait3D one, which names none of its sequences.
  assert len(report['options']['probe_set']) == 2
