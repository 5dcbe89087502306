"""The Generalized Inter-class Loss: composition of the terms and presets.

  L = λ_tri·L_tri + λ_unif·L_unif + λ_s·L_s + λ_ce·L_ce

with L_tri the (pair-weighted) triplet loss, L_unif the uniformity of the
class centres, L_s the pair-softmax and L_ce the BNNeck cross-entropy. The
weights and options live in ``config.loss`` (`get_loss_config`); a term whose
weight is 0 is not computed (only the uniformity of the batch is always
reported, as a cheap no-gradient diagnostic, so that runs of every preset
can be compared on it).

Presets:
  * ``triplet``: OpenGait's baseline TripletLoss (no pair weights, margin 0.2).
  * ``gil_rc``: parity with the GIL authors' released code: pair weights with
    the global normaliser, fixed margin, no uniformity term. Their GaitGL
    OUMVLP recipe also sets ``pair_softmax.weight=1`` and ``ce.weight=1``.
  * ``gil``: the full loss: pair weights, fixed margin and the uniformity term
    with λ_unif = 0.01 and t = 2. These defaults were chosen by the synthetic
    ablations of ``scripts/ablation.py``; their tables and reading are in
    docs/ablation.md and docs/ablation_wild.md.

Model recipes set their own CE term, e.g.
``get_loss_config('gil', ce=dict(weight=1.0, scale=1.0,
label_smoothing=0.0))`` for GaitGL on CASIA-B.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections

from gait_jax.losses import _common
from gait_jax.losses import softmax
from gait_jax.losses import triplet
from gait_jax.losses import uniformity

Array = jax.Array

_BASE = {
    'triplet': dict(weight=1.0, margin=0.2, pair_weight=False,
                    weight_norm='global', margin_mode='fixed',
                    # TrackletGait's hardness exclusion (see triplet.py).
                    hard_exclusion=False, hard_exclusion_frac=2.0 / 3.0),
    'uniformity': dict(weight=0.0, t=2.0, over='centers'),
    'pair_softmax': dict(weight=0.0, temperature=0.1),
    'ce': dict(weight=0.0, scale=16.0, label_smoothing=0.1),
}

_PRESETS = {
    'triplet': {},
    'gil_rc': {'triplet': dict(pair_weight=True)},
    'gil': {'triplet': dict(pair_weight=True),
            'uniformity': dict(weight=0.01)},
}

TERMS = tuple(_BASE)
PRESETS = tuple(_PRESETS)

# Options with a closed set of values.
_CHOICES = {
    ('triplet', 'weight_norm'): triplet.WEIGHT_NORMS,
    ('triplet', 'margin_mode'): triplet.MARGIN_MODES,
    ('uniformity', 'over'): uniformity.OVER_CHOICES,
}


def _merge(sections: dict[str, dict[str, Any]],
           overrides: Mapping[str, Any], source: str) -> None:
  for name, values in overrides.items():
    if name not in sections:
      raise ValueError(f'Unknown loss section {name!r} in {source}; expected '
                       f'one of {list(sections)}.')
    if not isinstance(values, Mapping):
      raise ValueError(f'{source} for loss section {name!r} must be a dict, '
                       f'got {values!r}.')
    for key, value in values.items():
      if key not in sections[name]:
        raise ValueError(f'Unknown key {name}.{key} in {source}; expected one '
                         f'of {list(sections[name])}.')
      sections[name][key] = _coerce(f'{name}.{key}', sections[name][key],
                                    value)


def _coerce(name: str, default: Any, value: Any) -> Any:
  """`value` with the type of the option's default (ints become floats)."""
  if isinstance(default, bool):
    ok = isinstance(value, bool)
  elif isinstance(default, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    value = float(value) if ok else value
  else:
    ok = isinstance(value, type(default))
  if not ok:
    raise ValueError(f'{name}={value!r} must be of type '
                     f'{type(default).__name__}.')
  return value


def validate_loss_config(config: Any) -> None:
  """Raises a ValueError naming the first invalid option of a loss config.

  Args:
    config: the ``config.loss`` section (ConfigDict or nested dicts).
  """
  for term in TERMS:
    if term not in config:
      raise ValueError(f'The loss config has no section {term!r}.')
    weight = config[term]['weight']
    if not weight >= 0:
      raise ValueError(f'{term}.weight must be >= 0, got {weight!r}.')
  for (term, key), valid in _CHOICES.items():
    _common.check_choice(f'{term}.{key}', config[term][key], valid)
  for term, key in (('pair_softmax', 'temperature'), ('uniformity', 't')):
    if not config[term][key] > 0:
      raise ValueError(
          f'{term}.{key} must be positive, got {config[term][key]!r}.')
  tri = config['triplet']
  if not isinstance(tri.get('hard_exclusion', False), bool):
    raise ValueError('triplet.hard_exclusion must be a bool, got '
                     f'{tri["hard_exclusion"]!r}.')
  triplet.check_hard_exclusion_frac(tri.get('hard_exclusion_frac', 2.0 / 3.0),
                                    'triplet.hard_exclusion_frac')
  smoothing = config['ce']['label_smoothing']
  if not 0.0 <= smoothing < 1.0:
    raise ValueError(
        f'ce.label_smoothing must be in [0, 1), got {smoothing!r}.')


def get_loss_config(preset: str, **overrides: Any
                    ) -> ml_collections.ConfigDict:
  """The ``config.loss`` section of a preset, with per-section overrides.

  Args:
    preset: 'triplet', 'gil_rc' or 'gil'.
    **overrides: section name -> dict of option values, e.g.
      ``ce=dict(weight=1.0, scale=1.0, label_smoothing=0.0)``.

  Returns:
    A ConfigDict with 'preset' and the sections 'triplet', 'uniformity',
    'pair_softmax' and 'ce'.

  Raises:
    ValueError: for an unknown preset, section, key or option value.
  """
  if preset not in _PRESETS:
    raise ValueError(
        f'Unknown loss preset {preset!r}; expected one of {list(PRESETS)}.')
  sections = copy.deepcopy(_BASE)
  _merge(sections, _PRESETS[preset], f'preset {preset!r}')
  _merge(sections, overrides, 'overrides')
  config = ml_collections.ConfigDict({'preset': preset, **sections})
  validate_loss_config(config)
  return config


def compute_loss(outputs: Mapping[str, Any], labels: Any, loss_config: Any,
                 *, samples_per_class: int | None,
                 axis_name: str | None = None
                 ) -> tuple[Array, dict[str, Array]]:
  """The configured GIL loss of a model's outputs.

  Args:
    outputs: dict with 'embeddings' [n, parts, channels] (Terms 1-4) and,
      when the CE term is on, 'logits' [n, classes, parts]. Local shards
      under `axis_name`.
    labels: [n] integer identities (class indices for the CE term).
    loss_config: the ``config.loss`` section (see `get_loss_config`).
    samples_per_class: static K of the P×K batch, or None for any labels.
    axis_name: mesh axis when called inside `jax.shard_map`; the loss, its
      gradient and the metrics are then those of the global batch.

  Returns:
    (loss, metrics): the weighted sum, and a flat dict of float32 scalars:
    'loss/total'; for every term with a non-zero weight its unweighted value
    'loss/<term>' (triplet, uniformity, pair_softmax, ce); with the triplet
    term 'triplet/nonzero' (non-zero triplets per part, mean over parts),
    'triplet/mean_pair_weight', 'triplet/mean_margin' (mean effective margin
    over all triplets), 'triplet/hard_loss' and 'triplet/mean_dist' (means
    over parts); with the CE term 'ce/accuracy'. 'uniformity/value' (the
    uniformity of the batch with the configured t and `over`) is always
    reported, as a no-gradient diagnostic when its weight is 0.
  """
  validate_loss_config(loss_config)
  cfg = {term: dict(loss_config[term]) for term in TERMS}
  if 'embeddings' not in outputs:
    raise ValueError('outputs must contain "embeddings" [n, parts, channels];'
                     f' got keys {sorted(outputs)}.')
  if cfg['ce']['weight'] > 0 and 'logits' not in outputs:
    raise ValueError('ce.weight > 0 needs outputs["logits"] [n, classes, '
                     f'parts]; got keys {sorted(outputs)}.')
  batch = _common.make_batch(outputs['embeddings'], labels, samples_per_class,
                             axis_name)
  metrics = {}
  total = jnp.zeros((), jnp.float32)

  if cfg['triplet']['weight'] > 0:
    c = cfg['triplet']
    value, aux = triplet.triplet_from_batch(
        batch, margin=float(c['margin']), pair_weight=bool(c['pair_weight']),
        weight_norm=c['weight_norm'], margin_mode=c['margin_mode'],
        hard_exclusion=bool(c.get('hard_exclusion', False)),
        hard_exclusion_frac=float(c.get('hard_exclusion_frac', 2.0 / 3.0)))
    total += c['weight'] * value
    metrics['loss/triplet'] = value
    metrics['triplet/nonzero'] = jnp.mean(aux['nonzero'].astype(jnp.float32))
    metrics['triplet/mean_pair_weight'] = aux['mean_pair_weight']
    metrics['triplet/mean_margin'] = aux['mean_margin']
    metrics['triplet/hard_loss'] = jnp.mean(aux['hard_loss'])
    metrics['triplet/mean_dist'] = jnp.mean(aux['mean_dist'])

  c = cfg['uniformity']
  if c['weight'] > 0:
    value = jnp.mean(uniformity.uniformity_from_batch(batch, float(c['t']),
                                                      c['over']))
    total += c['weight'] * value
    metrics['loss/uniformity'] = value
    metrics['uniformity/value'] = value
  else:
    diag = _common.stop_gradient_batch(batch)
    metrics['uniformity/value'] = jnp.mean(
        uniformity.uniformity_from_batch(diag, float(c['t']), c['over']))

  c = cfg['pair_softmax']
  if c['weight'] > 0:
    value, _ = softmax.pair_softmax_from_batch(batch, float(c['temperature']))
    total += c['weight'] * value
    metrics['loss/pair_softmax'] = value

  c = cfg['ce']
  if c['weight'] > 0:
    value, aux = softmax.cross_entropy_loss(
        outputs['logits'], labels, scale=float(c['scale']),
        label_smoothing=float(c['label_smoothing']), axis_name=axis_name)
    total += c['weight'] * value
    metrics['loss/ce'] = value
    metrics['ce/accuracy'] = aux['accuracy']

  metrics['loss/total'] = total
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  return total, metrics
