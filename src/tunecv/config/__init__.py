"""The one config that drives ``train``, ``cv`` and ``tune``.

Configs are frozen dataclasses: :class:`Config` is the schema. The command line and config files are
parsed by jsonargparse the way LightningCLI parses them (it *is* LightningCLI's parser,
:class:`lightning.pytorch.cli.LightningArgumentParser`): ``--config`` (repeatable, later wins), dotted
overrides, class_path shorthand (``--model.hidden 16``, ``--optimizer Adam``), omegaconf interpolation
(``${oc.env:VAR,default}``), and typed validation. ``model``, ``data``, ``trainer``, ``optimizer``,
``lr_scheduler``, ``seed_everything``, ``ckpt_path`` (every key of ``LightningCLI ... fit``) get
Lightning's own types; every other field of :class:`Config` gets the type of its annotation, so a field
added to a dataclass here is a config key without more code.

A parse error becomes one line that names the full dotted key, the constraint, the value and the valid
options. The key is found by bisecting the input (which ``--config`` file or override, then which key
inside it), the constraint from the key's type annotation: never from jsonargparse's wording.

Importing this package is light (no torch, no lightning); parsing imports lightning.

Its modules, one job each, bottom to top: :mod:`~tunecv.config.schema` (the dataclasses, the keys and their
defaults), :mod:`~tunecv.config.classes` (a user's class from its dotted path),
:mod:`~tunecv.config.validation` (checks beyond types), :mod:`~tunecv.config.parser` (the jsonargparse
parser), :mod:`~tunecv.config.command_line` (the command line before the parser reads it),
:mod:`~tunecv.config.diagnosis` (a failed parse as one line), :mod:`~tunecv.config.parsing` (command line,
files and mappings into a validated config) and :mod:`~tunecv.config.keys` (access by dotted key).
"""

from __future__ import annotations

from tunecv.config.classes import _annotation as _annotation
from tunecv.config.classes import _resolve_class as _resolve_class
from tunecv.config.classes import import_class, init_parameters
from tunecv.config.derived import derive
from tunecv.config.diagnosis import _describe_type as _describe_type
from tunecv.config.diagnosis import one_line
from tunecv.config.keys import check_key, get_key, set_in, set_key
from tunecv.config.parser import add_tunecv_keys, build_parser
from tunecv.config.parsing import (
    ParsedCommand,
    config_from_dict,
    dump_yaml,
    load_config,
    parse_command,
    precheck,
)
from tunecv.config.schema import _DEFAULTS as _DEFAULTS
from tunecv.config.schema import (
    CLASS_SECTIONS,
    DEVICE_KEYS,
    DICT_SECTIONS,
    FIT_KEYS,
    FLAGS,
    PARALLEL_STRATEGIES,
    PRUNERS,
    SAMPLERS,
    TEST_SPLITS,
    CheckpointConfig,
    Config,
    CVConfig,
    EarlyStoppingConfig,
    LoggingConfig,
    Mode,
    NestedConfig,
    ParallelStrategy,
    PrunerName,
    SamplerName,
    SplitConfig,
    TestSplit,
    TuneConfig,
    config_fields,
    config_keys,
)
from tunecv.config.validation import validate

__all__ = [
    "CLASS_SECTIONS",
    "DEVICE_KEYS",
    "DICT_SECTIONS",
    "FIT_KEYS",
    "FLAGS",
    "PARALLEL_STRATEGIES",
    "PRUNERS",
    "SAMPLERS",
    "TEST_SPLITS",
    "CVConfig",
    "CheckpointConfig",
    "Config",
    "EarlyStoppingConfig",
    "LoggingConfig",
    "Mode",
    "NestedConfig",
    "ParallelStrategy",
    "ParsedCommand",
    "PrunerName",
    "SamplerName",
    "SplitConfig",
    "TestSplit",
    "TuneConfig",
    "add_tunecv_keys",
    "build_parser",
    "check_key",
    "config_fields",
    "config_from_dict",
    "config_keys",
    "derive",
    "dump_yaml",
    "get_key",
    "import_class",
    "init_parameters",
    "load_config",
    "one_line",
    "parse_command",
    "precheck",
    "set_in",
    "set_key",
    "validate",
]
