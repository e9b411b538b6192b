"""Settings by name: `detector.cramp_min_s=8` on a command line or in a sweep, checked against
`PipelineConfig` (the key must exist, the value must have its type), applied as a new config.

Settable are the fields of the `filter`, `envelope`, `quality` and `detector` sections; the
recorder's scaling and the input mode have their own options (`--gain`, `--units`, `--mode`, ...).
"""

from __future__ import annotations

import difflib
import itertools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from dsp.config import (
    ConfigError,
    DetectorConfig,
    EnvelopeConfig,
    FilterConfig,
    PipelineConfig,
    QualityConfig,
)

SECTIONS: dict[str, type] = {
    "filter": FilterConfig,
    "envelope": EnvelopeConfig,
    "quality": QualityConfig,
    "detector": DetectorConfig,
}
_NONE_WORDS = ("none", "null")


def settable_keys() -> list[str]:
    """Every `SECTION.FIELD` that `--set` accepts."""
    return [
        f"{section}.{f.name}"
        for section, cls in SECTIONS.items()
        for f in fields(cls)
        if _field_type(cls, f.name)[0] is not None
    ]


def _field_type(cls: type, name: str) -> tuple[type | None, bool]:
    """(int, float or bool; whether None is allowed); (None, _) for fields `--set` cannot set."""
    hint = typing.get_type_hints(cls)[name]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    allows_none = type(None) in options
    scalars = [t for t in options if t in (bool, int, float)]
    return (scalars[0] if len(scalars) == 1 else None), allows_none


def check_key(key: str) -> tuple[str, str]:
    """(section, field) of a settable key; a ConfigError that lists the keys otherwise."""
    if key in settable_keys():
        section, name = key.split(".", 1)
        return section, name
    close = difflib.get_close_matches(key, settable_keys(), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ConfigError(f"unknown setting {key!r}; {hint}settable keys: {', '.join(settable_keys())}")


def parse_value(key: str, text: str) -> Any:
    """The value of `key` written as text, in the field's type."""
    section, name = check_key(key)
    kind, allows_none = _field_type(SECTIONS[section], name)
    word = text.strip()
    if word.lower() in _NONE_WORDS:
        if allows_none:
            return None
        raise ConfigError(f"{key} needs a value; 'none' is not allowed")
    try:
        if kind is bool:
            if word.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ValueError(word)
            return word.lower() in ("true", "yes", "on", "1")
        value = int(word) if kind is int else float(word)
    except ValueError:
        expected = {int: "a whole number", float: "a number", bool: "true or false"}[kind]  # type: ignore[index]
        raise ConfigError(f"{key}={word!r}: expected {expected}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={word!r}: expected a finite number")
    return value


def parse_assignment(text: str) -> tuple[str, tuple[Any, ...]]:
    """`SECTION.FIELD=V1,V2,...` -> (key, values), each value checked against the field."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not values.strip():
        raise ConfigError(
            f"{text!r} is not KEY=VALUE[,VALUE...] (for example detector.cramp_min_s=8,10)"
        )
    parsed = tuple(parse_value(key, value) for value in values.split(","))
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"{text!r} names a value twice")
    return key, parsed


def apply_settings(config: PipelineConfig, settings: Mapping[str, Any]) -> PipelineConfig:
    """A new, validated config with `settings` ({key: value}) applied."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        section, name = check_key(key)
        by_section.setdefault(section, {})[name] = value
    if not by_section:
        return config
    changes = {
        section: replace(getattr(config, section), **values)
        for section, values in by_section.items()
    }
    return config.with_changes(**changes)


def single_settings(assignments: Sequence[tuple[str, tuple[Any, ...]]] | None) -> dict[str, Any]:
    """{key: value} from assignments that give one value each (a sweep needs `crampwatch batch`)."""
    settings: dict[str, Any] = {}
    for key, values in assignments or ():
        if len(values) != 1:
            raise ConfigError(
                f"--set {key} gives {len(values)} values; one run takes one value per key "
                "(`crampwatch batch` runs a sweep over several)"
            )
        settings[key] = values[0]
    return settings


def settings_grid(
    assignments: Sequence[tuple[str, tuple[Any, ...]]] | None,
) -> list[dict[str, Any]]:
    """Every combination of the assigned values ([{}] without assignments); a key given twice
    is refused."""
    keys = [key for key, _ in assignments or ()]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ConfigError(f"--set {', '.join(twice)} given more than once; give the values once")
    values = [vals for _, vals in assignments or ()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
