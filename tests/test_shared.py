"""packages/shared: the transition table, wire converters, validation and migration."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import jobspine_shared as shared
from jobspine_shared import (
    SCHEMA_VERSION,
    TRANSITIONS,
    EventType,
    JobError,
    JobEvent,
    JobRecord,
    JobState,
    RecordValidationError,
    can_transition,
    checks,
)
from jobspine_shared.models import RetryPolicy
from jobspine_shared.states import FINAL_STATES
from tests.support import wire_samples
from tests.support.wire_samples import NOW

S = JobState

CONTRACT_TABLE = {
    (S.CREATED, S.RUNNING),
    (S.CREATED, S.PAUSED),
    (S.CREATED, S.CANCELLED),
    (S.RUNNING, S.CANCELLED),
    (S.PAUSED, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.PAUSED),
    (S.PAUSED, S.CREATED),
    (S.FAILED, S.CREATED),
    (S.CANCELLED, S.CREATED),
    (S.RUNNING, S.CREATED),  # contract v2: a retryable failure with attempts left
}


def record(**changes: Any) -> JobRecord:
    return wire_samples.record(3, input={"query": "q"}).evolve(**changes)


@pytest.mark.parametrize("source", list(JobState))
@pytest.mark.parametrize("target", list(JobState))
def test_can_transition_is_exactly_the_contract_table(source: S, target: S) -> None:
    assert can_transition(source, target) is ((source, target) in CONTRACT_TABLE)


def test_table_data_and_final_states() -> None:
    assert set(TRANSITIONS) == CONTRACT_TABLE
    assert FINAL_STATES == {S.COMPLETED}


def test_snapshot_has_exactly_the_contract_fields() -> None:
    wire = shared.job_to_wire(record())
    assert set(wire) == {
        "schema_version", "id", "user_id", "type", "input", "state", "progress", "step",
        "result", "error", "has_checkpoint", "checkpoint_at", "attempt", "recovery_attempts",
        "pause_requested", "created_at", "updated_at", "started_at", "paused_at",
        "completed_at", "failed_at", "cancelled_at", "last_heartbeat_at", "seq", "epoch",
        # schema v2
        "priority", "run_at", "tags", "parent_id", "timeout_s", "retry", "retries",
        "idempotency_key", "correlation_id",
    }  # fmt: skip
    assert wire["retry"] == {
        "max_attempts": 1, "backoff_s": 5.0, "backoff_factor": 2.0, "max_backoff_s": 300.0
    }  # fmt: skip
    assert (wire["priority"], wire["tags"], wire["retries"]) == (0, [], 0)
    assert wire["schema_version"] == SCHEMA_VERSION
    assert wire["state"] == "created"
    assert type(wire["state"]) is str
    assert wire["created_at"] == "2026-11-22T10:00:00Z"
    json.dumps(wire)


def test_wire_round_trip_with_every_field_set() -> None:
    full = record(
        state=S.FAILED,
        progress=42.5,
        step="step 2/5",
        result={"r": [1, 2]},
        error=JobError(code="worker_lost", message="gone", retryable=True),
        has_checkpoint=True,
        checkpoint_at=NOW,
        attempt=2,
        recovery_attempts=1,
        started_at=NOW,
        failed_at=NOW,
        last_heartbeat_at=NOW,
        priority=-7,
        run_at=NOW,
        tags=("a", "b:c"),
        parent_id="9b2f6a0e-0000-4000-8000-000000000002",
        timeout_s=2.5,
        retry=RetryPolicy(max_attempts=3, backoff_s=0.5, backoff_factor=3, max_backoff_s=9),
        retries=2,
        idempotency_key="k-1",
        correlation_id="req-1",
    )
    wire = shared.job_to_wire(full)
    assert wire["error"] == {"code": "worker_lost", "message": "gone", "retryable": True}
    assert shared.job_from_wire(json.loads(json.dumps(wire))) == full
    assert shared.validate_job_record(json.loads(json.dumps(wire))) == full


def test_event_round_trip() -> None:
    event = JobEvent(
        job_id="j", user_id="u", seq=18, epoch="e", type=EventType.PROGRESS, at=NOW,
        data={"progress": 45.0, "step": "s"},
    )  # fmt: skip
    wire = shared.event_to_wire(event)
    assert wire["type"] == "job:progress"
    assert shared.event_from_wire(wire) == event


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"state": "bogus"}, "$.state"),
        ({"progress": "high"}, "$.progress"),
        ({"progress": math.nan}, "$.progress"),
        ({"input": []}, "$.input"),
        ({"seq": 1.5}, "$.seq"),
        ({"created_at": "yesterday"}, "$.created_at"),
        ({"created_at": "2026-11-22T10:00:00"}, "$.created_at"),
        ({"pause_requested": "no"}, "$.pause_requested"),
        ({"surprise": 1}, "$"),
    ],
)
def test_validate_reports_the_offending_field(change: dict[str, Any], path: str) -> None:
    wire = shared.job_to_wire(record()) | change
    with pytest.raises(RecordValidationError) as refused:
        shared.validate_job_record(wire)
    assert any(path in error for error in refused.value.errors), refused.value.errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "Bad Type"}, "type"),
        ({"progress": 100.5}, "progress"),
        ({"step": "s" * 257}, "step"),
        ({"has_checkpoint": True}, "has_checkpoint"),
        ({"seq": -1}, "seq"),
        ({"priority": 101}, "priority"),
        ({"tags": ["bad tag"]}, "tags[0]"),
        ({"tags": [f"t{i}" for i in range(17)]}, "tags"),
        ({"timeout_s": 0}, "timeout_s"),
        (
            {
                "retry": {
                    "max_attempts": 21,
                    "backoff_s": 5.0,
                    "backoff_factor": 2.0,
                    "max_backoff_s": 300.0,
                }
            },
            "retry.max_attempts",
        ),
        ({"retries": -1}, "retries"),
    ],
)
def test_validate_applies_the_contract_limits(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordValidationError) as refused:
        shared.validate_job_record(shared.job_to_wire(record()) | change)
    assert refused.value.errors[0].startswith(field)


def test_validate_refuses_non_objects_and_future_versions() -> None:
    with pytest.raises(RecordValidationError):
        shared.validate_job_record([1, 2])
    with pytest.raises(RecordValidationError, match="newer"):
        shared.validate_job_record(
            shared.job_to_wire(record()) | {"schema_version": SCHEMA_VERSION + 1}
        )


def test_migrate_upgrades_a_synthetic_v0_record() -> None:
    v0 = {
        "id": "9b2f6a0e-0000-4000-8000-000000000001",
        "user_id": "u1",
        "type": "research",
        "input": {},
        "status": "running",
        "progress": 0.425,
        "created_at": "2026-11-22T10:00:00Z",
        "updated_at": "2026-11-22T10:00:00Z",
    }
    migrated = shared.migrate_job_record(v0)
    assert migrated["schema_version"] == SCHEMA_VERSION
    assert migrated["state"] == "running"
    assert "status" not in migrated
    job = shared.validate_job_record(v0)
    assert job.state is S.RUNNING
    assert job.progress == pytest.approx(42.5)
    assert (job.seq, job.recovery_attempts, job.pause_requested) == (0, 0, False)
    assert shared.migrate_job_record(shared.job_to_wire(job)) == shared.job_to_wire(job)


def test_migrate_upgrades_a_v1_record_with_the_v2_defaults() -> None:
    v1 = shared.job_to_wire(record())
    for name in (
        "priority", "run_at", "tags", "parent_id", "timeout_s", "retry", "retries",
        "idempotency_key", "correlation_id",
    ):  # fmt: skip
        del v1[name]
    v1["schema_version"] = 1
    job = shared.validate_job_record(v1)
    assert job.schema_version == 2
    assert (job.priority, job.run_at, job.tags, job.parent_id) == (0, None, (), None)
    assert (job.timeout_s, job.retries, job.idempotency_key, job.correlation_id) == (
        None, 0, None, None
    )  # fmt: skip
    assert job.retry == RetryPolicy(
        max_attempts=1, backoff_s=5, backoff_factor=2, max_backoff_s=300
    )
    assert job == record()


@pytest.mark.parametrize(
    ("retries", "expected"), [(0, 1.0), (1, 3.0), (2, 9.0), (3, 10.0), (10_000, 10.0)]
)
def test_retry_backoff_grows_by_the_factor_up_to_the_cap(retries: int, expected: float) -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=1, backoff_factor=3, max_backoff_s=10)
    assert policy.backoff_after(retries) == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 2.5}, "retry.max_attempts"),
        ({"backoff_s": -1}, "retry.backoff_s"),
        ({"backoff_factor": 0.5}, "retry.backoff_factor"),
        ({"max_backoff_s": 86401}, "retry.max_backoff_s"),
        ({"backoff_s": math.inf}, "retry.backoff_s"),
        ({"other": 1}, "retry.other"),
        ([], "retry"),
    ],
)
def test_retry_policy_check_names_the_key(value: object, field: str) -> None:
    with pytest.raises(checks.ValueCheckError) as refused:
        checks.retry_policy(value)
    assert refused.value.field == field


def test_retry_policy_check_fills_in_defaults() -> None:
    assert checks.retry_policy({"max_attempts": 3}) == RetryPolicy(max_attempts=3)
    assert checks.retry_policy(None) == RetryPolicy()


def test_resume_and_restart_sources_come_from_the_table() -> None:
    from jobspine_shared.states import RESTARTABLE_STATES, RESUMABLE_STATES

    assert RESUMABLE_STATES == {S.PAUSED}
    assert RESTARTABLE_STATES == {S.FAILED, S.CANCELLED}
