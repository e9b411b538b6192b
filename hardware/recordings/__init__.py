"""Streaming readers for recorded EMG files: CSV/text, .npy/.npz, EDF/BDF and WFDB.

`open_recording(path)` returns a `Recording` whose `blocks()` yields float64 arrays of shape
(n, n_channels) in the file's units, read block by block so that an 8-hour night replays in
bounded memory. Conventions:

- Arrays are (samples, channels). A 2-D .npy whose shape looks like (channels, samples) (at most 64
  rows and more than 64 columns) is refused with a hint to save the transpose.
- Text files: delimiter (comma, tab, semicolon, whitespace), header row, comment lines (`#`, `%`)
  and preamble lines are detected; metadata in them (sampling rate, resolution -> ADC counts,
  labels, units, UCI-style "Channel N: 'NAME', K values, engineering units: mV" lines) is used. A
  column named time/t/time_s/seconds/time_ms... is the time axis, not a channel: without a stated
  rate it gives the rate and must be evenly spaced (checked while streaming); with one (fs= or the
  header) it only has to agree with it when it is evenly spaced.
- Missing values (empty text fields, WFDB missing-sample codes) become NaN. Trailing text rows that
  hold no value in any selected channel (end-of-file padding, as in the UCI files) are dropped.
- Units: "uV", "mV", "V" or "counts"; None when the file does not say. When the selected channels
  declare different voltage units, every channel is converted to the unit of the first one. A
  channel with a non-electrical unit (e.g. a goniometer in "deg") is left out of the default
  selection; it can still be selected by name. `units=` overrides whatever the file says (no
  conversion: it states what the numbers are).
- .npy is read with plain file reads, not a memory map: mapped pages count towards the resident
  set size, so a memory-mapped 8-hour file would show its full size in RSS. .npz members are read
  through the archive's decompressing streams, a few MiB at a time (never whole).
- EDF and BDF (EDF+/BDF+ too) are read with pyedflib (EDFlib, C), channel by channel, a block at a
  time; EDF+ annotations are available through `Recording.annotations()`, and `gap` annotations
  read as missing samples. EDF/BDF and WFDB need optional packages
  (`pip install 'crampwatch[research]'`).
- Whatever a file or the arguments declare, memory stays bounded: rates, channels, line lengths,
  array widths, archive members and annotations have limits (`hardware.recordings.limits`), and
  what lies outside them is refused with a RecordingError. Its hints name the options as the caller
  spells them (`option_names=`: Python arguments by default, command-line options for commands).
"""

from hardware.recordings.errors import RecordingError
from hardware.recordings.formats import SUPPORTED_FORMATS
from hardware.recordings.opening import open_recording
from hardware.recordings.recording import FileAnnotation, Recording, RecordingInfo
from hardware.recordings.units import normalize_units

__all__ = [
    "SUPPORTED_FORMATS",
    "FileAnnotation",
    "Recording",
    "RecordingError",
    "RecordingInfo",
    "normalize_units",
    "open_recording",
]
