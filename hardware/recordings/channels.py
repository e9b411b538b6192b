"""Channel names: making them unique, listing them, and selecting channels by name or index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hardware.recordings.errors import RecordingError
from hardware.recordings.units import _is_other_unit

_MAX_NAMES_SHOWN = 40


def _unique_names(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        out.append(name if seen[key] == 1 else f"{name}#{seen[key]}")
    return tuple(out)


def _describe_channels(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(names)} in all)"
    return shown


def _default_channels(units: Sequence[str | None]) -> list[int]:
    """Channels used when none are named: all but non-electrical ones (all if none is left)."""
    keep = [i for i, unit in enumerate(units) if not _is_other_unit(unit)]
    return keep or list(range(len(units)))


def _select_channels(
    path: Path,
    names: Sequence[str],
    wanted: Sequence[str | int] | None,
    default: Sequence[int],
) -> list[int]:
    """Indices of the wanted channels (names case-insensitive, or 0-based indices)."""
    if wanted is None:
        return list(default)
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    if len(wanted) == 0:
        raise RecordingError(
            f"no channels selected for '{path}': name at least one, or none for all"
        )
    picked: list[int] = []
    for item in wanted:
        index = _channel_index(path, names, item)
        if index in picked:
            raise RecordingError(
                f"channel {names[index]!r} of '{path}' is selected twice; select each channel once"
            )
        picked.append(index)
    return picked


def _channel_index(path: Path, names: Sequence[str], item: str | int) -> int:
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        if -len(names) <= item < len(names):
            return int(item) % len(names)
    elif isinstance(item, str):
        exact = [i for i, n in enumerate(names) if n == item]
        folded = [i for i, n in enumerate(names) if n.lower() == item.strip().lower()]
        matches = exact or folded
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecordingError(
                f"channel name {item!r} is ambiguous in '{path}'; select it by 0-based index"
            )
        if item.strip().lstrip("-").isdigit():
            return _channel_index(path, names, int(item))
    raise RecordingError(
        f"no channel {item!r} in '{path}'; its channels are: {_describe_channels(names)} "
        "(select by name or 0-based index)"
    )
