"""The worker SDK's pure parts: backoff, progress coalescing, acks and refusals, and the
configuration of ``python -m workers``."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from workers.cli import EnvError, load_settings, main
from workers.sdk.backoff import Backoff
from workers.sdk.coalesce import ProgressCoalescer, ProgressUpdate
from workers.sdk.config import WorkerConfig
from workers.sdk.errors import RpcError
from workers.sdk.rpc import connect_refusal, parse_ack

# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0)

    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.25, rng=random.Random(7))

    delays = [backoff.next_delay() for _ in range(200)]

    assert all(0.75 <= d <= 1.25 for d in delays)
    assert len(set(delays)) > 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_backoff_jitter_differs_between_processes_forked_from_one() -> None:
    # An app that imports the client and then forks (a preloading server's workers) must not
    # give every child the same jitter: they would all reconnect in lockstep.
    def delays() -> list[float]:
        backoff = Backoff(1.0, 1.0, jitter=0.25)
        return [backoff.next_delay() for _ in range(8)]

    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only reports its delays
        os.write(writing, json.dumps(delays()).encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        childs = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert len(childs) == 8
    assert childs != delays()


# -- progress coalescing --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def coalescer(
    clock: Clock, *, min_delta: float = 1.0, min_interval_s: float = 1.0
) -> ProgressCoalescer:
    return ProgressCoalescer(min_delta=min_delta, min_interval_s=min_interval_s, clock=clock)


def sent_long_ago(update: ProgressUpdate) -> ProgressCoalescer:
    """A coalescer that sent ``update`` ten intervals ago."""
    clock = Clock()
    c = coalescer(clock)
    c.sent(update)
    clock.now += 10
    return c


def test_first_report_goes_out_at_once() -> None:
    c = coalescer(Clock())

    assert c.offer(5.0, "a") == ProgressUpdate(5.0, "a")


def test_reports_within_the_interval_wait_and_the_latest_wins() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(c.offer(5.0, "a") or ProgressUpdate(0, None))

    clock.now += 0.5
    assert c.offer(20.0, "a") is None
    assert c.offer(30.0, "b") is None
    assert c.take_due() is None
    clock.now += 0.5
    assert c.take_due() == ProgressUpdate(30.0, "b")


def test_small_moves_wait_but_a_new_step_text_goes_out() -> None:
    c = sent_long_ago(ProgressUpdate(5.0, "a"))

    assert c.offer(5.5, "a") is None
    assert c.offer(5.6, "b") == ProgressUpdate(5.6, "b")


def test_the_last_report_is_always_available_for_the_final_flush() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(ProgressUpdate(5.0, "a"))

    c.offer(5.1, "a")

    assert c.take_pending() == ProgressUpdate(5.1, "a")
    c.sent(ProgressUpdate(5.1, "a"))
    assert c.take_pending() is None


def test_a_repeat_of_what_was_sent_is_dropped() -> None:
    c = sent_long_ago(ProgressUpdate(5.0, "a"))

    assert c.offer(5.0, "a") is None
    assert c.take_pending() is None


def test_a_checkpoint_with_higher_progress_supersedes_a_pending_report() -> None:
    c = coalescer(Clock())
    c.sent(ProgressUpdate(5.0, "a"))
    c.offer(6.0, "a")

    c.superseded(10.0)

    assert c.take_pending() is None


# -- acks and refusals ----------------------------------------------------------------------


def test_parse_ack() -> None:
    assert parse_ack("claim", {"ok": True, "job": None}) == {"ok": True, "job": None}
    with pytest.raises(RpcError) as refused:
        parse_ack(
            "progress",
            {
                "ok": False,
                "error": {
                    "code": "lease_lost",
                    "message": "gone",
                    "details": {"state": "cancelled"},
                },
            },
        )
    assert (refused.value.code, refused.value.message) == ("lease_lost", "gone")
    assert refused.value.details == {"state": "cancelled"}
    with pytest.raises(RpcError, match="protocol_error"):
        parse_ack("claim", "nonsense")


def test_connect_refusal_reads_the_contract_error_object() -> None:
    wrapped = {"message": "expired", "data": {"code": "unauthorized", "message": "expired"}}
    assert connect_refusal(wrapped) == ("unauthorized", "expired")
    assert connect_refusal({"code": "forbidden", "message": "users only"}) == (
        "forbidden",
        "users only",
    )
    assert connect_refusal("Connection refused by the server") is None


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        WorkerConfig(url="http://x", token="t", heartbeat_interval_s=0)
    with pytest.raises(ValueError, match="concurrency"):
        WorkerConfig(url="http://x", token="t", concurrency=0)


# -- python -m workers: configuration -------------------------------------------------------


#: What ``python -m workers`` runs with when a variable is unset: URL, concurrency,
#: heartbeat interval, types.
DEFAULTS = ("http://127.0.0.1:8080", 4, 5.0, ("research", "trade", "analysis"))
VARIABLES = ("JOBSPINE_URL", "WORKER_TYPES", "WORKER_CONCURRENCY", "WORKER_HEARTBEAT_S")
EVERY_VARIABLE = {
    "JOBSPINE_URL": "https://jobs.example:8443",
    "WORKER_TYPES": " trade, research ,trade",
    "WORKER_CONCURRENCY": "8",
    "WORKER_HEARTBEAT_S": "0.5",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, DEFAULTS, id="unset"),
        pytest.param(dict.fromkeys(VARIABLES, " "), DEFAULTS, id="blank-means-default"),
        pytest.param(
            EVERY_VARIABLE, ("https://jobs.example:8443", 8, 0.5, ("trade", "research")), id="every"
        ),
    ],
)
def test_settings_read_the_variables(env: dict[str, str], expected: tuple[Any, ...]) -> None:
    settings = load_settings({"JOBSPINE_TOKEN": "jwt", **env})
    config = settings.config
    assert (config.url, config.concurrency, config.heartbeat_interval_s, settings.types) == expected


@pytest.mark.parametrize("value", ["", "auto", "asyncio", "UVLOOP"])
def test_the_event_loop_is_the_web_process_s_choice(value: str) -> None:
    settings = load_settings({"JOBSPINE_TOKEN": "jwt", "EVENT_LOOP": value})
    assert settings.event_loop == (value.lower() or "auto")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "JOBSPINE_TOKEN"),
        ({"JOBSPINE_URL": "ftp://x"}, "JOBSPINE_URL"),
        ({"WORKER_TYPES": "research,mining"}, "WORKER_TYPES"),
        ({"WORKER_TYPES": " , "}, "WORKER_TYPES"),
        ({"WORKER_CONCURRENCY": "many"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"WORKER_HEARTBEAT_S": "-1"}, "WORKER_HEARTBEAT_S"),
        ({"WORKER_HEARTBEAT_S": "nan"}, "WORKER_HEARTBEAT_S"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP"),
    ],
)
def test_a_bad_variable_is_named_in_one_line_and_exits_2(
    env: dict[str, str], variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = {"JOBSPINE_TOKEN": "jwt", **env} if variable != "JOBSPINE_TOKEN" else env
    with pytest.raises(EnvError, match=f"^{variable}: "):
        load_settings(full)

    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert variable in err
