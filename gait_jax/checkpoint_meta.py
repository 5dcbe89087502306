"""What identifies a checkpoint, and which differences a resume accepts.

`checkpoint_meta(config)` is the JSON stored with every checkpoint (model,
optimizer and schedule sections, loss preset); `check_meta` compares a stored
meta with the one a config asks for under the rule of `gait_jax.checkpoint`'s
docstring.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

# Model fields that do not change the parameters (not compared, not stored).
MODEL_FIELDS_IGNORED = ('ops', 'conv_kernel_grad', 'remat')

def _jsonable(value: Any) -> Any:
  if hasattr(value, 'to_dict'):
    value = value.to_dict()
  return json.loads(json.dumps(value, default=str, sort_keys=True))


def checkpoint_meta(config) -> dict[str, Any]:
  """What identifies a checkpoint of ``config``.

  Args:
    config: the run's config.

  Returns:
    ``{'model', 'optim', 'schedule', 'loss_preset'}``: the config sections
    as JSON values, the model's ``ops``, ``conv_kernel_grad`` and ``remat``
    fields left out.
  """
  model = _jsonable(config.model)
  for name in MODEL_FIELDS_IGNORED:
    model.pop(name, None)
  return {
      'model': model,
      'optim': _jsonable(config.optim),
      'schedule': _jsonable(config.schedule),
      'loss_preset': str(config.loss.get('preset', '')),
  }


def _sgd_has_momentum(optim: Mapping[str, Any]) -> bool:
  return bool(float(optim.get('momentum') or 0.0))


def _diff(section: str, stored: Mapping[str, Any],
          requested: Mapping[str, Any]) -> list[tuple[str, str]]:
  """``(field, 'section.field: a (checkpoint) vs b (config)')`` per field."""
  return [(key, f'{section}.{key}: {stored.get(key)!r} (checkpoint) vs '
                f'{requested.get(key)!r} (config)')
          for key in sorted(set(stored) | set(requested))
          if stored.get(key) != requested.get(key)]


def check_meta(stored: Mapping[str, Any],
               requested: Mapping[str, Any]) -> tuple[list[str], list[str]]:
  """Compares a checkpoint's meta with the one a config asks for.

  The rule is the module docstring's: the model must match exactly (but for
  ``MODEL_FIELDS_IGNORED``), the optimizer's name and, for SGD, whether it has momentum must
  match; other optimizer fields, the schedule and the loss preset may differ.
  Only sections present in both are compared.

  Args:
    stored: the checkpoint's meta.
    requested: the config's (`checkpoint_meta`).

  Returns:
    ``(refused, tolerated)``: the differences, each as ``'section.field:
    <checkpoint value> (checkpoint) vs <config value> (config)'``.
  """
  stored, requested = _jsonable(dict(stored)), _jsonable(dict(requested))
  refused, tolerated = [], []
  if isinstance(stored.get('model'), dict) and isinstance(
      requested.get('model'), dict):
    model_a, model_b = (
        {k: v for k, v in m.items() if k not in MODEL_FIELDS_IGNORED}
        for m in (stored['model'], requested['model']))
    refused += [text for _, text in _diff('model', model_a, model_b)]
  if isinstance(stored.get('optim'), dict) and isinstance(
      requested.get('optim'), dict):
    optim_a, optim_b = stored['optim'], requested['optim']
    both_named = 'name' in optim_a and 'name' in optim_b
    for key, text in _diff('optim', optim_a, optim_b):
      if key == 'name' and both_named:
        refused.append(text)
      elif (key == 'momentum' and both_named and
            optim_a['name'] == optim_b['name'] == 'sgd' and
            _sgd_has_momentum(optim_a) != _sgd_has_momentum(optim_b)):
        refused.append(f'{text} (momentum 0 keeps no momentum buffer)')
      else:
        tolerated.append(text)
  if isinstance(stored.get('schedule'), dict) and isinstance(
      requested.get('schedule'), dict):
    tolerated += [text for _, text in _diff('schedule', stored['schedule'],
                                            requested['schedule'])]
  if 'loss_preset' in stored and 'loss_preset' in requested and (
      stored['loss_preset'] != requested['loss_preset']):
    tolerated.append(f'loss_preset: {stored["loss_preset"]!r} (checkpoint) '
                     f'vs {requested["loss_preset"]!r} (config)')
  return refused, tolerated
