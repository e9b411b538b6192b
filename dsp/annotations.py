"""Ground-truth segments: what really happened in a recording, for scoring detections."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Kinds a ground-truth segment can have. Only `cramp` is a cramp; `movement` covers turning over and
# periodic limb movements; `walking` is rhythmic activity; `electrode_off`, `clipping` and `gap` are
# bad-signal stretches; `prodrome` is the slow sub-threshold rise before a cramp; `ecg` is heartbeat
# contamination, `fasciculation` a stretch of isolated motor-unit twitches and `standing` quiet
# standing (tonic, sway-modulated calf activity), none of them cramps or movements.
ANNOTATION_KINDS = (
    "cramp",
    "movement",
    "walking",
    "prodrome",
    "electrode_off",
    "clipping",
    "gap",
    "marker",
    "ecg",
    "fasciculation",
    "standing",
)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One labelled stretch of a recording, in seconds from its start; `channel` None means all."""

    kind: str
    start_s: float
    end_s: float
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ANNOTATION_KINDS:
            raise ValueError(
                f"unknown annotation kind {self.kind!r}; expected one of {', '.join(ANNOTATION_KINDS)}"
            )
        if not self.end_s >= self.start_s:
            raise ValueError(f"annotation ends ({self.end_s}) before it starts ({self.start_s})")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
