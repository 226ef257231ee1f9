"""Command-line flags generated from `Config`: one flag per field, defined once per process.

    from lvae_tf import config_flags
    config_flags.define_config_flags()            # --flow, --steps, --learning_rate, ...
    config = config_flags.config_from_flags()     # the preset, then the flags given

Each flag's default is `None`, meaning "the preset's value"; a flag given on the command line
overrides the preset. Help texts and allowed values come from `lvae_tf.config`, so they are
written once. `define_config_flags` skips flags that already exist, so several scripts can be
imported into one process.
"""

import dataclasses
import typing

from absl import flags

from lvae_tf import config as config_lib

__all__ = ['config_from_flags', 'define_config_flags', 'define_workdir_flag', 'flag_name']


def flag_name(field):
  return field.metadata.get('flag') or field.name


def _kind(field):
  kind = field.type
  if isinstance(kind, str):  # postponed annotations
    kind = eval(kind, vars(config_lib), vars(typing))  # pylint: disable=eval-used
  args = [a for a in typing.get_args(kind) if a is not type(None)]
  return args[0] if args else kind


def define_config_flags(flag_values=flags.FLAGS, default_preset='paper'):
  """Defines a flag for every `Config` field not yet defined in `flag_values`."""
  for field in dataclasses.fields(config_lib.Config):
    name = flag_name(field)
    if name in flag_values:
      continue
    help_text = field.metadata['help']
    if field.name == 'preset':
      flags.DEFINE_enum(name, default_preset, list(config_lib.PRESETS),
                        'Preset of field values (lvae_tf.config.PRESETS); flags given '
                        'override it.', flag_values=flag_values)
      continue
    kind = _kind(field)
    if field.name in config_lib.CHOICES:
      flags.DEFINE_enum(name, None, list(config_lib.CHOICES[field.name]), help_text,
                        flag_values=flag_values)
    elif kind is bool:
      flags.DEFINE_bool(name, None, help_text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(name, None, help_text, flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(name, None, help_text, flag_values=flag_values)
    else:
      flags.DEFINE_string(name, None, help_text, flag_values=flag_values)


def define_workdir_flag(flag_values=flags.FLAGS):
  """`--workdir`, the root of run directories, shared by the scripts that train or read runs."""
  if 'workdir' not in flag_values:
    flags.DEFINE_string('workdir', 'runs', 'Root of the run directories.',
                        flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
  """The `Config` of the preset flag, overridden by every config flag given."""
  overrides = {}
  for field in dataclasses.fields(config_lib.Config):
    if field.name == 'preset':
      continue
    value = flag_values[flag_name(field)].value
    if value is not None:
      overrides[field.name] = value
  return config_lib.Config.from_preset(flag_values['preset'].value, **overrides)
