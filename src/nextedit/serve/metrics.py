"""Prometheus metrics of one server: requests by arm and outcome, latency, tokens, cancellations."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Latency bucket edges (seconds), dense around the 50/100/200/300/500 ms marks that matter for Tab.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0)


class ServeMetrics:
    """All server metrics on a private registry (several servers can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("nextedit_requests", "Predict requests answered, by arm and outcome "
                                "(ok, empty, timeout, parse_failed, filtered, cancelled, error).",
                                ["arm", "outcome"], registry=r)
        self.latency = Histogram("nextedit_request_latency_seconds", "End-to-end predict latency.",
                                 ["arm"], buckets=LATENCY_BUCKETS, registry=r)
        self.backend_latency = Histogram("nextedit_backend_latency_seconds", "Time inside the backend call.",
                                         ["arm"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_latency = Histogram("nextedit_upstream_latency_seconds", "Round trip to an upstream "
                                          "inference server (HTTP arms), part of the backend time.",
                                          ["arm"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("nextedit_tokens", "Model tokens, by arm and direction (input, output).",
                              ["arm", "direction"], registry=r)
        self.cancellations = Counter("nextedit_cancellations", "Requests cancelled by a newer request "
                                     "from the same client and file.", ["arm"], registry=r)
        self.shadow = Counter("nextedit_shadow_requests", "Shadow-arm runs, by arm and outcome.",
                              ["arm", "outcome"], registry=r)
        self.events = Counter("nextedit_events", "Feedback events stored, by type and arm.",
                              ["type", "arm"], registry=r)
        self.events_rejected = Counter("nextedit_events_rejected", "Feedback events refused, by reason "
                                       "(unknown_request: an id this server did not issue).", ["reason"], registry=r)
        self.skipped = Counter("nextedit_skipped_attempts", "Prediction attempts the editor ended without a "
                               "prediction, by reason (excluded, backoff, too_large, ...).", ["reason"], registry=r)
        self.inflight = Gauge("nextedit_inflight_requests", "Predict requests being answered now.", registry=r)
        self.rejected_http = Counter("nextedit_http_errors", "Requests refused with a 4xx, by status.",
                                     ["status"], registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
