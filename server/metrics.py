"""Prometheus metrics for one app: request counts and latency histograms, model slot
lifecycle, audio produced, and the engine's live queue state.

Each app owns its own CollectorRegistry (never the process-wide default one), so several
apps can live in one process (tests) without their series colliding. This module knows
neither FastAPI nor torch: the HTTP side feeds it, and the engine is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.engine.jobs import FinishReason

if TYPE_CHECKING:
    from server.engine.scheduler import Engine
    from server.engine.slots.models import ModelSlot

PREFIX = "qwen3_tts"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Speech latency spans milliseconds (encoding a chunk) to minutes (a long text on CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LOAD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """The app's metrics. `observe_request` takes the per-request timings once a speech
    request ends; `count_request` counts every HTTP request (the middleware calls it), so a
    request is counted exactly once whether or not it reached the speech service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests by route and status.", ["endpoint", "status"], registry=reg
        )

        def latency(name: str, doc: str) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, ["endpoint"], buckets=LATENCY_BUCKETS, registry=reg)

        self.queue_seconds = latency("queue_seconds", "Time a speech request waited for the inference thread.")
        self.inference_seconds = latency("inference_seconds", "Model time spent on a speech request.")
        self.encode_seconds = latency("encode_seconds", "Audio encoding time of a speech request.")
        self.request_seconds = latency("request_seconds", "Total time of a speech request, first byte to last.")
        self.ttfa_seconds = latency("time_to_first_audio_seconds", "Time to the first audio chunk of a stream.")
        self.audio_seconds = Counter(f"{PREFIX}_audio_seconds", "Seconds of audio produced.", registry=reg)
        self.finishes = Counter(
            f"{PREFIX}_finish", "Speech requests by how they ended (finish reason).", ["reason"], registry=reg
        )
        for reason in FinishReason:  # every series from the first scrape, at 0
            self.finishes.labels(reason=reason.value)
        self.characters = Counter(f"{PREFIX}_characters", "Characters of input text synthesised.", registry=reg)
        self.model_loads = Counter(f"{PREFIX}_model_loads", "Model loads by slot.", ["slot"], registry=reg)
        self.model_unloads = Counter(f"{PREFIX}_model_unloads", "Model unloads by slot.", ["slot"], registry=reg)
        self.model_load_seconds = Histogram(
            f"{PREFIX}_model_load_seconds", "Time to load a model.", ["slot"], buckets=LOAD_BUCKETS, registry=reg
        )

    def count_request(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def observe_request(
        self,
        *,
        endpoint: str,
        status: int,
        queue_ms: float,
        inference_ms: float,
        encode_ms: float,
        total_ms: float,
        ttfa_ms: float | None,
        audio_seconds: float,
        chars: int,
        finish_reason: str | None = None,
    ) -> None:
        """Record one finished speech request. Audio is counted whatever the outcome (it was
        produced); latencies and characters only for successes, so refusals answered in
        microseconds (queue full, bad voice) do not drag the latency histograms down."""
        if audio_seconds > 0:
            self.audio_seconds.inc(audio_seconds)
        if finish_reason is not None:
            self.finishes.labels(reason=finish_reason).inc()
        if status != 200:
            return
        self.characters.inc(chars)
        self.queue_seconds.labels(endpoint=endpoint).observe(queue_ms / 1000)
        self.inference_seconds.labels(endpoint=endpoint).observe(inference_ms / 1000)
        self.encode_seconds.labels(endpoint=endpoint).observe(encode_ms / 1000)
        self.request_seconds.labels(endpoint=endpoint).observe(total_ms / 1000)
        if ttfa_ms is not None:
            self.ttfa_seconds.labels(endpoint=endpoint).observe(ttfa_ms / 1000)

    def model_loaded(self, slot: ModelSlot, seconds: float) -> None:
        self.model_loads.labels(slot=slot.name).inc()
        self.model_load_seconds.labels(slot=slot.name).observe(seconds)

    def model_unloaded(self, slot: ModelSlot) -> None:
        self.model_unloads.labels(slot=slot.name).inc()

    def bind_engine(self, engine: Engine) -> None:
        """Follow the engine's model slots and expose its live state at scrape time."""
        for slot in engine.slots.values():
            # Create the labelled series now, so a scrape shows 0 before the first load.
            self.model_loads.labels(slot=slot.name)
            self.model_unloads.labels(slot=slot.name)
            slot.on_load = self.model_loaded
            slot.on_unload = self.model_unloaded
        self.registry.register(EngineCollector(engine))

    def bind_caches(self, caches: dict[str, Callable[[], dict[str, int]]]) -> None:
        """Expose each cache's stats (`size`, `hits`, `misses`, and `bytes` where kept) at scrape time."""
        self.registry.register(CacheCollector(caches))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EngineCollector:
    """Gauges read from the engine when scraped, so they can never go stale or drift
    from what /health reports."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        engine = self._engine
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs admitted and not finished (as /health reports).")
        depth.add_metric([], engine.depth)
        in_flight = GaugeMetricFamily(f"{PREFIX}_in_flight_jobs", "Jobs admitted per model slot.", labels=["slot"])
        loaded = GaugeMetricFamily(f"{PREFIX}_model_loaded", "1 when the slot's model is loaded.", labels=["slot"])
        for name, slot in engine.slots.items():
            in_flight.add_metric([name], slot.in_flight)
            loaded.add_metric([name], 1 if slot.backend is not None else 0)
        return [depth, in_flight, loaded]


class CacheCollector:
    """Hits, misses, entries and bytes of the server's caches (output, clone prompts), read
    from the caches' own counters when scraped, the same numbers /health shows."""

    def __init__(self, caches: dict[str, Callable[[], dict[str, int]]]) -> None:
        self._caches = caches

    def collect(self) -> Iterable[Metric]:
        hits = CounterMetricFamily(f"{PREFIX}_cache_hits", "Cache hits by cache.", labels=["cache"])
        misses = CounterMetricFamily(f"{PREFIX}_cache_misses", "Cache misses by cache.", labels=["cache"])
        entries = GaugeMetricFamily(f"{PREFIX}_cache_entries", "Entries held by cache.", labels=["cache"])
        size = GaugeMetricFamily(f"{PREFIX}_cache_bytes", "Bytes held by cache (where counted).", labels=["cache"])
        for name, stats_of in self._caches.items():
            stats = stats_of()
            hits.add_metric([name], stats["hits"])
            misses.add_metric([name], stats["misses"])
            entries.add_metric([name], stats["size"])
            if "bytes" in stats:
                size.add_metric([name], stats["bytes"])
        return [hits, misses, entries, size]
