"""ECG variations for the tests, built from the heart's physiology with the generator's beat model
(hardware.synthetic_physiology): heart rate that steps up and down (an arousal), ectopic beats of
both kinds, and ECG laid over any signal, including the real recordings.

- A **heart-rate step**: at an arousal the sinus rate rises within a few beats (here by a chosen
  fraction over 3 beats) and settles back over tens of seconds.
- A **ventricular ectopic beat (PVC)** comes early (55-70 % of the RR), has no P wave and a wide,
  larger QRS of its own shape; the sinus beat it hides is lost, so the next beat comes two RR after
  the last sinus one (the full compensatory pause).
- An **atrial ectopic beat (PAC)** comes early (70-85 % of the RR) with a normal QRS and resets the
  sinus node: the next beat comes one RR after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hardware.synthetic_physiology import ECG_SUPPORT_S, EcgParams, ecg_beat, heartbeat_times


@dataclass(frozen=True)
class Beat:
    """One beat: R-peak time (s), the RR it belongs to (s), its waveform and what it is."""

    time_s: float
    rr_s: float
    params: EcgParams
    kind: str = "sinus"


def sinus_beats(params: EcgParams, start_s: float, end_s: float, seed: int) -> list[Beat]:
    """The generator's sinus rhythm (drift, respiratory sinus arrhythmia, Mayer waves, jitter)."""
    times, rrs = heartbeat_times(params, start_s, end_s, seed)
    return [Beat(float(t), float(rr), params) for t, rr in zip(times, rrs, strict=True)]


def stepped_beats(
    params: EcgParams,
    start_s: float,
    end_s: float,
    *,
    step_at_s: float,
    rise: float,
    settle_s: float = 40.0,
    seed: int = 0,
) -> list[Beat]:
    """Sinus rhythm whose rate rises by `rise` (0.3: +30 %) over 3 beats at `step_at_s`, then
    falls back to the resting rate over `settle_s` (an arousal)."""
    rng = np.random.default_rng(seed)
    rr0 = 60.0 / params.hr_bpm
    beats, t, n_after = [], start_s, 0
    while t < end_s:
        factor = 1.0
        if t >= step_at_s:
            n_after += 1
            onset = min(1.0, n_after / 3.0)
            fade = max(0.0, 1.0 - (t - step_at_s) / settle_s) if n_after > 3 else 1.0
            factor = 1.0 / (1.0 + rise * onset * fade)
        rr = rr0 * factor * (1.0 + params.jitter * rng.standard_normal())
        beats.append(Beat(t, rr, params))
        t += rr
    return beats


def with_ectopics(
    beats: list[Beat], *, per_minute: float, seed: int, kinds: tuple[str, ...] = ("pvc", "pac")
) -> list[Beat]:
    """Replace sinus beats by ectopic ones at about `per_minute`, with their timing rules."""
    rng = np.random.default_rng(seed)
    out: list[Beat] = []
    i, shift = 0, 0.0
    while i < len(beats):
        beat = replace(beats[i], time_s=beats[i].time_s + shift)
        if out and i + 1 < len(beats) and rng.random() < per_minute * beat.rr_s / 60.0:
            last, rr = out[-1], beat.rr_s
            if rng.choice(kinds) == "pvc":
                wide = replace(
                    beat.params,
                    r_uv=beat.params.r_uv * float(rng.uniform(1.2, 1.8)),
                    qrs_width=beat.params.qrs_width * float(rng.uniform(1.6, 2.2)),
                    rs_ratio=float(rng.uniform(0.6, 1.0)),
                )
                out.append(Beat(last.time_s + float(rng.uniform(0.55, 0.7)) * rr, rr, wide, "pvc"))
                i += 1  # its sinus beat is hidden: the next one comes 2 RR after the last
                out.append(replace(beats[i], time_s=beats[i].time_s + shift))
            else:
                early = last.time_s + float(rng.uniform(0.7, 0.85)) * rr
                out.append(Beat(early, rr, beat.params, "pac"))
                shift += early + rr - beats[i + 1].time_s - shift  # the node resets
                i += 1
                out.append(replace(beats[i], time_s=beats[i].time_s + shift))
        else:
            out.append(beat)
        i += 1
    return out


def render(beats: list[Beat], fs: float, n_samples: int) -> np.ndarray:
    """The beats at the electrodes (uV), one column of `n_samples`."""
    y = np.zeros(n_samples)
    lo, hi = ECG_SUPPORT_S
    for beat in beats:
        i0 = max(0, int(np.floor((beat.time_s + lo) * fs)))
        i1 = min(n_samples, int(np.ceil((beat.time_s + hi) * fs)))
        if i0 < i1:
            t_rel = np.arange(i0, i1) / fs - beat.time_s
            y[i0:i1] += ecg_beat(t_rel, beat.rr_s, beat.params)
    return y


@dataclass
class Outcome:
    """What the pipeline reported over a whole signal."""

    events: list
    quality_changes: list
    fasciculations: object
    limb_movements: object
    envelope: np.ndarray
    floors_uv: list[float]

    def ended(self, kind: str | None = None, channel: str | None = None) -> list:
        return [
            e
            for e in self.events
            if e.phase == "ended" and kind in (None, e.kind) and channel in (None, e.channel)
        ]

    def notes(self, channel: str) -> list[tuple[float, tuple[str, ...]]]:
        return [(q.at_s, q.problems) for q in self.quality_changes if q.channel == channel]


def run_pipeline(config, x: np.ndarray, block: int = 65_536) -> Outcome:
    """The pipeline over `x` in blocks (the replay's block size)."""
    from dsp.pipeline import Pipeline

    pipeline = Pipeline(config, source_id="ecg-tests")
    outputs = [pipeline.process(x[i : i + block]) for i in range(0, len(x), block)]
    outputs.append(pipeline.finish())
    return Outcome(
        [e for o in outputs for e in o.events],
        [q for o in outputs for q in o.quality_changes],
        outputs[-1].fasciculations,
        outputs[-1].limb_movements,
        np.concatenate([o.envelope for o in outputs]),
        [d.floor.value for d in pipeline.detectors],
    )
