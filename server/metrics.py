"""Process metrics and their Prometheus text exposition (format 0.0.4), written by hand.

Counters live here; gauges that describe the present (jobs by state, connected sockets) are
read at scrape time by :mod:`server.rest.ops`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _series(name: str, labels: Labels, value: float) -> str:
    if labels:
        body = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
        return f"{name}{{{body}}} {_number(value)}"
    return f"{name} {_number(value)}"


class Family:
    """One metric with its help text, type and labelled samples."""

    def __init__(self, name: str, kind: str, help: str) -> None:
        self.name, self.kind, self.help = name, kind, help
        self.samples: dict[Labels, float] = {}
        #: Samples under names of their own (a histogram's ``_bucket``, ``_sum``, ``_count``).
        self.samples_named: dict[tuple[str, Labels], float] = {}

    def set(self, value: float, **labels: str) -> None:
        self.samples[tuple(sorted(labels.items()))] = value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(_series(self.name, k, v) for k, v in sorted(self.samples.items()))
        lines.extend(_series(name, k, v) for (name, k), v in self.samples_named.items())
        return lines


def exposition(families: Iterable[Family]) -> str:
    return "\n".join(line for family in families for line in family.render()) + "\n"


class Metrics:
    """Counters of this process since it started."""

    def __init__(self) -> None:
        self.events_emitted: Counter[str] = Counter()
        self.socket_calls: Counter[tuple[str, str, str]] = Counter()
        self.http_requests: Counter[tuple[str, str, str]] = Counter()
        #: Clients dropped because their send queue reached ``MAX_CLIENT_QUEUE``.
        self.slow_clients_dropped = 0
        #: Progress updates stored without a live event (``PROGRESS_EVENTS_PER_S``).
        self.progress_events_throttled = 0
        #: Jobs deleted, by reason: ``user`` (DELETE /api/jobs/{id}) or ``retention``.
        self.jobs_deleted: Counter[str] = Counter()

    def event_emitted(self, event_type: str) -> None:
        self.events_emitted[event_type] += 1

    def socket_call(self, namespace: str, event: str, outcome: str) -> None:
        self.socket_calls[(namespace, event, outcome)] += 1

    def http_request(self, method: str, route: str, status: int) -> None:
        self.http_requests[(method, route, str(status))] += 1

    def slow_client_dropped(self) -> None:
        self.slow_clients_dropped += 1

    def progress_event_throttled(self) -> None:
        self.progress_events_throttled += 1

    def jobs_deleted_by(self, reason: str, count: int = 1) -> None:
        self.jobs_deleted[reason] += count

    def families(self) -> list[Family]:
        emitted = Family(
            "jobspine_events_emitted_total", "counter", "Job events emitted to Socket.IO rooms."
        )
        for event_type, count in self.events_emitted.items():
            emitted.set(count, type=event_type)
        calls = Family(
            "jobspine_socket_calls_total",
            "counter",
            "Socket.IO calls by namespace, event and outcome (ok or the error code).",
        )
        for (namespace, event, outcome), count in self.socket_calls.items():
            calls.set(count, namespace=namespace, event=event, outcome=outcome)
        http = Family(
            "jobspine_http_requests_total", "counter", "HTTP requests by method, route and status."
        )
        for (method, route, status), count in self.http_requests.items():
            http.set(count, method=method, route=route, status=status)
        dropped = Family(
            "jobspine_slow_clients_dropped_total",
            "counter",
            "Clients disconnected because their send queue reached MAX_CLIENT_QUEUE.",
        )
        dropped.set(self.slow_clients_dropped)
        throttled = Family(
            "jobspine_progress_events_throttled_total",
            "counter",
            "Progress updates stored without a live event (PROGRESS_EVENTS_PER_S).",
        )
        throttled.set(self.progress_events_throttled)
        deleted = Family(
            "jobspine_jobs_deleted_total",
            "counter",
            "Jobs deleted with their events, checkpoint and audit trail, by reason.",
        )
        for reason in ("user", "retention"):
            deleted.set(self.jobs_deleted[reason], reason=reason)
        return [emitted, calls, http, dropped, throttled, deleted]


def gauge(name: str, help: str, values: Mapping[str, float], label: str) -> Family:
    family = Family(name, "gauge", help)
    for key, value in values.items():
        family.set(value, **{label: key})
    return family


__all__ = ["Family", "Metrics", "exposition", "gauge"]
