"""The error every recording reader raises, and how its hints name the options.

A hint such as "pass the sampling rate" must name the option the reader of the message can use:
`--fs HZ` on the command line, `fs=HZ` in Python. Messages are written with `option(...)`
placeholders; the error renders them with the names it was given (`open_recording(...,
option_names=COMMAND_LINE)` for a command, Python's argument names by default). A command whose
options differ (e.g. `run --play` reads `--signal-fs`) passes its own names; an option the command
lacks is left out of the hint rather than named wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Each option: (name, how a value follows it). Python: keyword arguments of open_recording().
PYTHON: Mapping[str, str] = {
    "fs": "fs={}",
    "channel": "channels=[{}]",
    "units": "units={}",
    "file_format": "fmt={}",
    "delimiter": "delimiter={}",
    "header": "has_header=True",
    "no_header": "has_header=False",
}
# The options `crampwatch replay` and `crampwatch calibrate FILE` take.
COMMAND_LINE: Mapping[str, str] = {
    "fs": "--fs {}",
    "channel": "--channel {}",
    "units": "--units {}",
    "file_format": "--file-format {}",
    "delimiter": "--delimiter {}",
    "header": "--header",
    "no_header": "--no-header",
}

# `crampwatch run --play FILE` and `--signal FILE`: a file's rate and units come from these.
SIGNAL_OPTIONS: Mapping[str, str] = {"fs": "--signal-fs {}", "units": "--signal-units {}"}

_MARK = "\x1f"
_PLACEHOLDER = re.compile(_MARK + r"(\w+)\|([^" + _MARK + r"]*)\|([^" + _MARK + r"]*)" + _MARK)


def option(key: str, value: str = "", clause: str = "{}") -> str:
    """A placeholder for an option, e.g. option("fs", "HZ") -> `--fs HZ` or `fs=HZ`.

    `clause` is the text around the option ("; or pass {}"); it disappears with the option when
    the names in use have no such option.
    """
    return f"{_MARK}{key}|{value}|{clause}{_MARK}"


def render(message: str, names: Mapping[str, str]) -> str:
    """The message with its option placeholders spelled as `names` spell them."""

    def spell(match: re.Match[str]) -> str:
        key, value, clause = match.groups()
        template = names.get(key)
        if template is None:
            return ""
        if "{}" not in template:
            return clause.format(template)
        if value:
            return clause.format(template.format(value))
        return clause.format(template.split("{}")[0].rstrip("=[ "))

    return _PLACEHOLDER.sub(spell, message)


class RecordingError(ValueError):
    """A recording cannot be read as asked; the message says what is wrong and what to do."""

    def __init__(self, message: str, option_names: Mapping[str, str] = PYTHON) -> None:
        super().__init__(message)
        self.option_names = option_names

    def __str__(self) -> str:
        return render(str(self.args[0]), self.option_names)

    def __reduce__(self) -> tuple[type[RecordingError], tuple[str, dict[str, str]]]:
        """Pickled with its option names (an error may come from a reader in another process)."""
        return type(self), (str(self.args[0]), dict(self.option_names))
