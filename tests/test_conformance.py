"""The conformance suite, Python side: the client's fold (``jobspine_client.fold``) applied to
event streams recorded from a real server on both stores ends, after every step, with the
snapshot fields the events determine equal to the server's snapshot; the fixtures cover
every event type, validate against the wire schema, and re-recording them gives the same
streams (volatile fields normalised)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jobspine_client.fold import apply_event, folded_fields
from jobspine_shared.events import EventType
from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_from_wire, job_to_wire
from tests.conformance.record import FIXTURES, STORES, covered_types, normalised, record

SCHEMA = Path(__file__).resolve().parents[1] / "packages" / "shared" / "schema" / "wire.schema.json"


def fixture(store: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"{store}.json").read_text())
    return document


def fold_step(job: JobRecord | None, step: dict[str, Any]) -> tuple[JobRecord, set[str]]:
    """The job after the step's events, and the snapshot fields they determine."""
    fields: set[str] = set()
    for event in step["events"]:
        if job is None:
            assert event["type"] == EventType.CREATED, "a stream starts with job:created"
            job = job_from_wire(event["data"]["job"])
        else:
            assert event["seq"] == job.seq + 1, "recorded streams have no gaps"
            job = apply_event(job, event)
        fields.update(folded_fields(event["type"]))
    assert job is not None
    return job, fields


@pytest.mark.parametrize("store", STORES)
def test_the_fold_matches_the_server_after_every_step(store: str) -> None:
    compared = 0
    for stream in fixture(store)["streams"]:
        job: JobRecord | None = None
        for number, step in enumerate(stream["steps"]):
            job, fields = fold_step(job, step)
            folded, snapshot = job_to_wire(job), step["snapshot"]
            names = set(snapshot) if "*" in fields else fields
            wrong = {f: (folded[f], snapshot[f]) for f in sorted(names) if folded[f] != snapshot[f]}
            assert not wrong, f"{stream['name']} step {number} ({step['action']}): {wrong}"
            compared += len(names)
    assert compared > 100


@pytest.mark.parametrize("store", STORES)
def test_the_fixtures_cover_every_event_type_and_match_the_wire_schema(store: str) -> None:
    document = fixture(store)
    assert covered_types(document) == {t.value for t in EventType}
    defs = json.loads(SCHEMA.read_text())["$defs"]
    event_schema = jsonschema.Draft202012Validator({"$ref": "#/$defs/AnyEvent", "$defs": defs})
    job_schema = jsonschema.Draft202012Validator({"$ref": "#/$defs/Job", "$defs": defs})
    for stream in document["streams"]:
        for step in stream["steps"]:
            job_schema.validate(step["snapshot"])
            for event in step["events"]:
                event_schema.validate(event)


def test_both_stores_record_the_same_streams() -> None:
    assert normalised(fixture("memory")) == normalised(fixture("postgres"))


async def test_re_recording_on_memory_gives_the_committed_streams() -> None:
    fresh = await record("memory")
    assert normalised(fresh) == normalised(fixture("memory")), (
        "the memory fixture drifted: run python -m tests.conformance.record --store memory"
    )


@pytest.mark.postgres
async def test_re_recording_on_postgres_gives_the_committed_streams(postgres_dsn: str) -> None:
    fresh = await record("postgres", postgres_dsn)
    assert normalised(fresh) == normalised(fixture("postgres")), (
        "the postgres fixture drifted: run python -m tests.conformance.record --store postgres"
    )
