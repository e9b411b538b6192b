"""Names of the supported recording formats: canonical, aliases, file suffixes, and the
hint that lists them."""

from hardware.recordings.errors import option

SUPPORTED_FORMATS = ("csv", "npy", "npz", "edf", "bdf", "wfdb")
_SUPPORTED_TEXT = (
    "supported: .csv .txt .tsv .tab .asc .dat (text), .npy, .npz, .edf, .bdf, "
    "WFDB (.hea + .dat, or the record name)"
    + option("file_format", "FORMAT", "; or name the format with {}")
)
_TEXT_SUFFIXES = {".csv", ".txt", ".tsv", ".tab", ".asc", ".dat"}
_FORMAT_ALIASES = {
    "csv": "csv",
    "text": "csv",
    "txt": "csv",
    "tsv": "csv",
    "npy": "npy",
    "npz": "npz",
    "edf": "edf",
    "edf+": "edf",
    "bdf": "bdf",
    "bdf+": "bdf",
    "wfdb": "wfdb",
}
