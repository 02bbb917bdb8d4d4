"""A config derived from a validated one plus new values in its ``model`` / ``data`` init arguments, without
parsing the whole config again (a tune derives one per trial: the full jsonargparse parse was ~0.4 s of it).

Only the changed sections go through jsonargparse, each through a parser of that one section built as the
full parser builds it (``LightningArgumentParser.add_lightning_class_args``, subclass mode), so a value is
checked against the class's signature and normalised as the full parse would; the rest of the config is the
base config's, already validated, and :func:`~tunecv.config.validation.validate` runs on the result. Where
that does not hold (a project's own CLI, whose parser may link arguments; a key outside ``model.init_args``
or ``data.init_args``; a class path changed; a string that interpolation could change) or the section
parser rejects a value, :func:`derive` returns ``None`` and the caller parses the whole config, which also
gives the one-line error.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Optional

from tunecv.config.keys import set_in
from tunecv.config.schema import Config, _plain
from tunecv.config.validation import validate

DERIVED_SECTIONS = ("model", "data")


def derive(cfg: Config, values: Mapping[str, Any]) -> Optional[Config]:
    """``cfg`` with each dotted key of ``values`` set (all under ``model.init_args`` / ``data.init_args``),
    validated; ``None`` when the values need the full parse (see the module's docstring)."""
    if getattr(cfg, "cli", None) or not values:
        return None
    changed: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, _, rest = key.partition(".")
        base = getattr(cfg, section, None) if section in DERIVED_SECTIONS else None
        if (not rest.startswith("init_args.") or not isinstance(base, Mapping) or "class_path" not in base
                or not _plain_value(value)):
            return None
        data = changed.setdefault(section, _plain(dict(base)))
        set_in(data, rest, _plain(value))
    sections: dict[str, Any] = {}
    for section, data in changed.items():
        parsed = _parse_section(section, data)
        if parsed is None or parsed.get("class_path") != data["class_path"]:
            return None
        sections[section] = parsed
    derived = dataclasses.replace(cfg, **sections)
    validate(derived)
    return derived


def _plain_value(value: Any) -> bool:
    """A sampled value the section parser reads as the full parser would: numbers, booleans, ``None``,
    strings no interpolation touches, and lists or mappings of those."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "${" not in value
    if isinstance(value, (list, tuple)):
        return all(_plain_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain_value(v) for k, v in value.items())
    return False


def _parse_section(section: str, data: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """``data`` parsed as the full parser parses that section, as a plain mapping; ``None`` when the section
    parser rejects it (the full parse then says why)."""
    parser = _section_parser(section)
    try:
        ns = parser.parse_object({section: dict(data)})
    except (Exception, SystemExit):
        return None
    parsed = getattr(ns, section, None)
    if parsed is None:
        return None
    return _plain(parsed.as_dict() if hasattr(parsed, "as_dict") else parsed)


@functools.cache
def _section_parser(section: str) -> Any:
    """A parser of one class section, added as :func:`tunecv.config.parser._add_lightning_section` adds it."""
    import lightning as L  # lazy: heavy; importing tunecv.config stays light
    from lightning.pytorch.cli import LightningArgumentParser

    parser = LightningArgumentParser(exit_on_error=False, default_meta=False, parser_mode="omegaconf",
                                     allow_abbrev=False)
    base = L.LightningModule if section == "model" else L.LightningDataModule
    parser.add_lightning_class_args(base, section, subclass_mode=True, required=False)
    return parser
