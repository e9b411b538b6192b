"""The device daemon: source -> pipeline -> outputs (MQTT through the outbox, night recording,
event file, log), until the source ends or a stop is asked for (SIGTERM/SIGINT).

Wall times in every output come from the session's `WallAnchor` (the first sample's time, corrected
when the system clock steps), never from a start time read once: events, quality changes, the
state, envelope summaries and markers made after a correction carry the corrected times."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dsp.config import PipelineConfig
from dsp.events import (
    PHASE_ENDED,
    STATE_SIGNAL_LOST,
    Event,
    QualityChange,
    StateChange,
    iso_utc,
)
from dsp.pipeline import Pipeline, PipelineOutput
from firmware_host.device import live_sources
from firmware_host.device.device_panel import DevicePanel
from firmware_host.device.ha_discovery import DeviceInfo, birth_topic, discovery_messages
from firmware_host.device.messages import (
    ChannelStates,
    EnvelopeSummary,
    event_payload,
    marker_payload,
    quality_payload,
)
from firmware_host.device.mqtt_link import MqttLink
from firmware_host.device.night_budget import MB, RecordingBudget
from firmware_host.device.night_recorder import NightRecorder, night_directory
from firmware_host.device.outbox import Outbox
from firmware_host.device.session_control import SessionChange, SessionControl
from firmware_host.device.wall_anchor import SystemTime, WallAnchor
from firmware_host.event_output import EventWriter, atomic_text_output, event_line
from firmware_host.run_summary import RunSummary
from hardware import log_coalescing
from hardware.log_coalescing import repeated
from messaging.broker import BrokerSettings, parse_broker
from messaging.topics import Topics

log = logging.getLogger("crampwatch")
STATE_REFRESH_S = 60.0  # the retained state (with the good-signal totals) at least this often


class Publisher:
    """Pipeline output -> MQTT: events, quality and the retained state through the outbox
    (QoS 1), envelope summaries live (QoS 0)."""

    def __init__(
        self, link: MqttLink, config: PipelineConfig, hop_s: float, started: datetime,
        envelope_interval_s: float, storage: Callable[[], dict[str, Any]] | None = None,
        storage_key: Callable[[], tuple[str, ...]] | None = None,
        session: SessionControl | None = None,
    ) -> None:  # fmt: skip
        self.link, self.outbox, self.topics = link, link.outbox, link.topics
        self.started = started
        self.session = session or SessionControl()
        self.states = ChannelStates(config.device, config.channels, started, storage=storage,
                                    session=self.session.current)  # fmt: skip
        self.envelope = EnvelopeSummary(
            config.device, config.channels, hop_s, started, envelope_interval_s,
            session=lambda: self.session.current,
        )  # fmt: skip
        self._storage_key = storage_key or (lambda: ())
        self._storage_seen = self._storage_key()
        self._state_at_s = 0.0
        self._put_state(0.0)

    def publish(self, output: PipelineOutput, elapsed_s: float) -> None:
        tag = self.states.session
        for record in output.records:
            if isinstance(record, Event):
                self.outbox.put(self.topics.event, event_payload(record, tag), kind="event")
            elif isinstance(record, QualityChange):
                self.states.quality(record.channel, record.problems)
                payload = quality_payload(record, self.topics.device, self.states.recording_start,
                                          tag)  # fmt: skip
                self.outbox.put(self.topics.quality, payload, kind="quality")
            elif isinstance(record, StateChange):
                self.states.change(record.channel, record.state, record.at_s)
        self.states.add_envelope(output.envelope)
        storage_now = self._storage_key()
        changed = storage_now != self._storage_seen  # a disk failed or came back: say so now
        self._storage_seen = storage_now
        plm_changed = self.states.set_limb_movements(output.limb_movements)
        self.states.set_fasciculations(output.fasciculations)
        if (
            output.state_changes
            or changed
            or plm_changed
            or elapsed_s - self._state_at_s >= STATE_REFRESH_S
        ):
            self._put_state(elapsed_s)
        if output.records:
            self.link.kick()
        for summary in self.envelope.add(output.first_hop, output.envelope):
            self.link.publish_live(self.topics.envelope, summary)

    def marker(self, marker: dict[str, Any]) -> None:
        payload = marker_payload(
            self.topics.device, str(marker["wall"]), float(marker["at_s"]), str(marker["source"]),
            self.states.session,
        )  # fmt: skip
        self.outbox.put(self.topics.marker, payload, kind="marker")
        self.link.kick()

    def change_session(self, change: SessionChange) -> None:
        """The last state of the session that ends, then the first of the one that begins."""
        self._put_state(change.at_s)
        self.states.begin(change.at_s, change.after)
        self._put_state(change.at_s)
        self.link.kick()

    def reanchor(self, session_start: datetime, elapsed_s: float) -> None:
        """The wall clock stepped: later messages carry times from the corrected start, and the
        retained state is sent again with them."""
        self.states.reanchor(session_start)
        self.envelope.session_start = session_start
        self._put_state(elapsed_s)
        self.link.kick()

    def close_session(self, elapsed_s: float) -> None:
        """The final state: every open stretch closed, the session's good-signal totals."""
        self._put_state(elapsed_s)
        self.link.kick()

    def _put_state(self, elapsed_s: float) -> None:
        self._state_at_s = elapsed_s
        # the newest state of each session the recording is cut into (night, dialysis, ...)
        key = f"state {self.started.isoformat()} {self.states.sessions}"
        self.outbox.put(
            self.topics.state, self.states.payload(elapsed_s), kind="state", retain=True,
            coalesce_key=key,
        )  # fmt: skip


@dataclass
class Daemon:
    """One run of the device: open everything, loop over sample arrays, close everything."""

    args: argparse.Namespace
    stop: threading.Event = field(default_factory=threading.Event)
    summary: RunSummary | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    open_source: Callable[[argparse.Namespace], live_sources.Live] = live_sources.open_source
    wall_clock: SystemTime | None = None  # the system's, unless a test injects one
    anchor: WallAnchor | None = None

    def run(self) -> None:
        args = self.args
        live = self.open_source(args)
        with ExitStack() as stack:
            stack.enter_context(live.source)
            live.source.start()
            config, arrays = live.configure(args)
            self.anchor = WallAnchor(self.wall_clock, first_sample_age_s=live.first_sample_age_s())
            started = self.anchor.start
            pipeline = Pipeline(
                config, source_id=f"{args.device}-{started.isoformat()}", session_start=started
            )
            self.summary = RunSummary(config.channels)
            log.info(
                "%s: %d channel(s) %s at %g Hz%s",
                args.source if args.source != "simulated" else f"simulated {args.sim}",
                len(config.channels),
                ", ".join(config.channels),
                config.fs,
                " (measured)" if live.front_end is not None else "",
            )
            session = SessionControl(args.session, hold_kind=args.hold_session, started=started)
            outputs = self._open_outputs(stack, live, config, pipeline, self.anchor, session)
            for array in arrays:
                outputs.handle(pipeline.process(array), array, pipeline.duration_s)
                outputs.look_at_the_clock(pipeline.duration_s)
                if self.stop.is_set():
                    log.info("stopping: closing open events and flushing")
                    break
            outputs.handle(pipeline.finish(), None, pipeline.duration_s)
            self.summary.duration_s = pipeline.duration_s
            self.stats = live.source.stats.as_dict()
            outputs.finish(
                {**self.summary.as_dict(), "acquisition": self.stats}, pipeline.duration_s
            )

    def _open_outputs(
        self, stack: ExitStack, live: live_sources.Live, config: PipelineConfig,
        pipeline: Pipeline, anchor: WallAnchor, session: SessionControl,
    ) -> Outputs:  # fmt: skip
        args = self.args
        assert self.summary is not None
        started = anchor.start
        outputs = Outputs(config, anchor, self.summary, session=session)
        if session.initial.named:
            log.info("recording %s (started with --session)", session.initial.describe())
        if live.pin_factory is not None or args.source in ("ads1115", "mcp3008"):
            outputs.panel = stack.enter_context(DevicePanel(live, config.channels, session))
        if args.out:
            stream = stack.enter_context(atomic_text_output(Path(args.out)))
            outputs.writer = EventWriter(stream, args.fmt)
        if args.record:
            outputs.recorder = stack.enter_context(self._open_recorder(live, config, started))
            outputs.recording_on = True
        if args.mqtt:
            outputs.publisher = self._open_publisher(stack, live, config, pipeline, started,
                                                     outputs)  # fmt: skip
        return outputs

    def _open_recorder(
        self, live: live_sources.Live, config: PipelineConfig, started: datetime
    ) -> NightRecorder:
        args = self.args
        root = Path(args.recording_dir).expanduser()
        budget = RecordingBudget(
            root,
            max_bytes=round(args.recording_max_mb * MB),
            max_nights=args.recording_max_nights,
            min_free_bytes=round(args.recording_min_free_mb * MB),
        )
        directory = night_directory(root, started, config.device)
        recorder = NightRecorder.for_config(
            directory, config, started=started, lsb_v=live.lsb_v,
            segment_s=args.segment_minutes * 60.0, budget=budget,
        )  # fmt: skip
        status = recorder.status()
        log.info(
            "recording the night to %s (%s nights kept, %.0f MB; %s MB free; limits: %s)",
            directory, status["nights"], status["nights_mb"], status["free_mb"],
            budget.describe_limits(),
        )  # fmt: skip
        return recorder

    def _open_publisher(
        self, stack: ExitStack, live: live_sources.Live, config: PipelineConfig,
        pipeline: Pipeline, started: datetime, outputs: Outputs,
    ) -> Publisher:  # fmt: skip
        args = self.args
        outbox = stack.enter_context(
            Outbox(
                Path(args.outbox).expanduser(),
                max_unsent=args.max_unsent,
                keep_sent_s=args.keep_sent_days * 86400.0,
                memory_bytes=round(args.outbox_memory_mb * MB),
                retry_s=args.outbox_retry_s,
            )
        )
        outputs.outbox = outbox
        outbox.prune()
        topics = Topics(config.device, args.topic_prefix)
        device = DeviceInfo(hardware_text(args, live), args.dashboard_url)
        host, port = parse_broker(args.broker)
        link = MqttLink(
            BrokerSettings(
                host=host,
                port=port,
                username=args.username,
                password=args.password,
                tls=args.tls,
                ca_file=args.ca_file,
                cert_file=args.cert_file,
                key_file=args.key_file,
                tls_insecure=args.tls_insecure,
                keepalive_s=args.keepalive_s,
            ),
            topics,
            outbox,
            discovery=(
                (lambda: discovery_messages(topics, config.channels, args.discovery_prefix, device))
                if args.discovery
                else None
            ),
            discovery_birth_topic=birth_topic(args.discovery_prefix) if args.discovery else None,
            envelope_expiry_s=args.envelope_expiry_s,
            discovery_interval_s=args.discovery_interval_s,
            on_command=outputs.session.on_command,
        )
        link.start()
        stack.callback(link.stop)
        hop_s = pipeline.hop / config.fs
        return Publisher(
            link, config, hop_s, started, args.envelope_interval_s,
            storage=outputs.storage_status, storage_key=outputs.storage_key,
            session=outputs.session,
        )  # fmt: skip


def hardware_text(args: argparse.Namespace, live: live_sources.Live) -> str:
    """The converter and front end, for Home Assistant's device page."""
    chip = args.sim if args.source == "simulated" else args.source
    if chip == "mcp3008":
        text = "MCP3008 10-bit"
    elif chip == "ads1115":
        text = f"ADS1115 16-bit, PGA {args.pga:g} V"
    else:
        return f"recording playback ({Path(args.play).name})"
    prefix = "simulated " if args.source == "simulated" else ""
    gain = live.front_end.gain if live.front_end is not None else args.front_end_gain
    return f"{prefix}{text}, front-end gain {gain:g}"


@dataclass
class Outputs:
    """Where each block's results go; every part is optional."""

    config: PipelineConfig
    anchor: WallAnchor
    summary: RunSummary
    panel: DevicePanel | None = None
    writer: EventWriter | None = None
    recorder: NightRecorder | None = None
    publisher: Publisher | None = None
    outbox: Outbox | None = None
    recording_on: bool = False
    recording_error: str | None = None
    lost: set[str] = field(default_factory=set)
    session: SessionControl = field(default_factory=SessionControl)

    def storage_key(self) -> tuple[str, ...]:
        """Cheap: where the outbox keeps messages and whether the recording runs."""
        return (
            self.outbox.storage if self.outbox is not None else "-",
            self.recorder.state if self.recorder is not None else self._recording_state(),
        )

    def storage_status(self) -> dict[str, Any]:
        """The state message's `storage` block."""
        status: dict[str, Any] = {}
        if self.outbox is not None:
            status["outbox"] = self.outbox.status()
        if self.recorder is not None:
            status["recording"] = self.recorder.status()
        else:
            status["recording"] = {
                "state": self._recording_state(),
                "problem": self.recording_error,
            }
        return status

    def _recording_state(self) -> str:
        return "stopped" if self.recording_on else "off"

    def handle(self, output: PipelineOutput, samples: Any, elapsed_s: float) -> None:
        output = self._anchored(output)
        if samples is not None:
            self._recording(lambda recorder: recorder.write(samples))
        self.summary.add_events(output.events)
        self.summary.add_state_changes(output.state_changes)
        self.summary.add_limb_movements(output.limb_movements)
        self.summary.add_fasciculations(output.fasciculations)
        for record in output.records:
            self._record(record)
        if self.publisher is not None:
            self.publisher.publish(output, elapsed_s)
        if self.panel is not None:
            for marker in self.panel.update(output, elapsed_s):
                self._marker(marker)
        for change in self.session.take(elapsed_s):  # commands, a held button
            if self.publisher is not None:
                self.publisher.change_session(change)

    def look_at_the_clock(self, elapsed_s: float) -> None:
        """Correct the wall-time anchor if the system clock stepped; send due log summaries."""
        if self.anchor.check() and self.publisher is not None:
            self.publisher.reanchor(self.anchor.start, elapsed_s)
        log_coalescing.flush_due()

    def _anchored(self, output: PipelineOutput) -> PipelineOutput:
        """The output with its events dated from the current anchor (the pipeline's session
        start is the one it was made with)."""
        start = self.anchor.start
        if all(e.session_start == start for e in output.events):
            return output
        moved = {id(e): dataclasses.replace(e, session_start=start) for e in output.events}
        return dataclasses.replace(
            output,
            events=[moved[id(e)] for e in output.events],
            records=[moved.get(id(r), r) for r in output.records],
        )

    def finish(self, summary: dict[str, Any], elapsed_s: float) -> None:
        if self.recorder is not None:
            self._recording(lambda recorder: recorder.flush())
        if self.publisher is not None:
            self.publisher.close_session(elapsed_s)
        if self.writer is not None:
            self.writer.summary(summary)
        self._log_storage()

    def _log_storage(self) -> None:
        """The night's disk problems, as errors (the exit status stays 0: the night ran)."""
        if self.recorder is not None:
            status = self.recorder.status()
            if status["lost_s"] or self.recorder.lost_lines:
                log.error(
                    "night recording: %.0f s of signal and %d event line(s) were not recorded "
                    "(%s)", status["lost_s"], self.recorder.lost_lines,
                    status["problem"] or "the disk was full or failing",
                )  # fmt: skip
        elif self.recording_error is not None:
            log.error("night recording stopped during the night: %s", self.recording_error)
        if self.outbox is not None:
            status = self.outbox.status()
            if status["problem"] or status["dropped_this_session"]:
                log.error(
                    "outbox: %s; %d message(s) dropped this session", status["problem"]
                    or "its disk failed during the night (it works again)",
                    status["dropped_this_session"],
                )  # fmt: skip

    def _record(self, record: Event | StateChange | QualityChange) -> None:
        if isinstance(record, Event):
            if self.writer is not None:
                self.writer.event(record)
            if record.phase == PHASE_ENDED:
                self._recording(lambda recorder: recorder.event(record))
            at = self.anchor.at(record.start_s)
            log.info("%s  %s", at.astimezone().strftime("%H:%M:%S"), event_line(record))
        elif isinstance(record, QualityChange):
            if self.writer is not None:
                self.writer.quality(record)
            if record.problems:
                log.info(
                    "%s: %s at %.0f s", record.channel, ", ".join(record.problems), record.at_s
                )
        elif record.state == STATE_SIGNAL_LOST:
            self.lost.add(record.channel)
            log.warning("%s: signal lost at %s (%.0f s); no detection until it is back",
                        record.channel, self._clock_time(record.at_s), record.at_s,
                        extra=repeated(f"signal {record.channel}"))  # fmt: skip
        elif record.channel in self.lost:
            self.lost.discard(record.channel)
            log.info("%s: signal back at %s (%.0f s)", record.channel,
                     self._clock_time(record.at_s), record.at_s,
                     extra=repeated(f"signal {record.channel}"))  # fmt: skip

    def _clock_time(self, at_s: float) -> str:
        return self.anchor.at(at_s).astimezone().strftime("%H:%M:%S")

    def _marker(self, marker: dict[str, Any]) -> None:
        # Dated like the events, from the anchor: a press before a clock step lines up with them.
        marker["wall"] = iso_utc(self.anchor.at(float(marker["at_s"])))
        log.info("marker button pressed at %s (%.1f s)", self._clock_time(marker["at_s"]),
                 marker["at_s"])  # fmt: skip
        if self.writer is not None:
            self.writer.record(marker)
        if self.publisher is not None:
            self.publisher.marker(marker)
        self._recording(
            lambda recorder: recorder.marker(
                float(marker["at_s"]), str(marker["wall"]), str(marker["source"])
            )
        )

    def _recording(self, write: Callable[[NightRecorder], None]) -> None:
        """Write to the night recording; a disk that fails (full, removed) stops the recording,
        loudly, never the detection or the messages."""
        if self.recorder is None:
            return
        try:
            write(self.recorder)
        except OSError as error:
            log.error("night recording stopped: %s; detection and MQTT go on", error)
            self.recording_error = str(error)
            self.recorder = None
