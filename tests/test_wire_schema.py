"""The wire schema (packages/shared/schema/wire.schema.json): the committed copy is what
scripts/gen_wire_types.py renders from packages/shared, every reference resolves, every event
type has its data, and real server output validates against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jobspine_shared.events import EventType
from jobspine_shared.wire_schema import CALLS, DEFS_PREFIX, EVENT_DATA, PUSHES, wire_document
from tests.support.server import LiveServer, connect_user, connect_worker

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "packages" / "shared" / "schema" / "wire.schema.json"


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return own + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def validator(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads(COMMITTED.read_text())
    return jsonschema.Draft202012Validator({"$ref": DEFS_PREFIX + name, "$defs": document["$defs"]})


def assert_valid(name: str, value: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(value)]
    assert not errors, f"{name}: {errors}"


def test_the_committed_schema_is_current() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/gen_wire_types.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()
    assert json.loads(COMMITTED.read_text()) == wire_document()


def test_the_schema_is_valid_and_every_reference_resolves() -> None:
    document = wire_document()
    jsonschema.Draft202012Validator.check_schema(document)
    names = set(document["$defs"])
    missing = {r for r in refs(document) if r.removeprefix(DEFS_PREFIX) not in names}
    assert not missing
    named = {n for calls in CALLS.values() for pair in calls.values() for n in pair}
    named |= {n for pushes in PUSHES.values() for n in pushes.values()}
    assert named <= names


def test_every_event_type_has_its_data_and_a_typed_event() -> None:
    assert set(EVENT_DATA) == set(EventType)
    defs = wire_document()["$defs"]
    union = {r["$ref"].removeprefix(DEFS_PREFIX) for r in defs["AnyEvent"]["oneOf"]}
    assert union == {PUSHES["/"][kind.value] for kind in EventType}
    assert defs["ProgressEvent"]["properties"]["type"]["const"] == "job:progress"


def test_v1_and_v2_snapshots_differ_by_the_v2_fields() -> None:
    defs = wire_document()["$defs"]
    v2_only = set(defs["Job"]["properties"]) - set(defs["JobV1"]["properties"])
    assert v2_only == {
        "priority", "run_at", "tags", "parent_id", "timeout_s", "retry", "retries",
        "idempotency_key", "correlation_id",
    }  # fmt: skip
    assert defs["JobV1"]["properties"]["schema_version"]["const"] == 1


def test_the_schema_refuses_what_the_contract_refuses() -> None:
    event = {
        "job_id": "00000000-0000-4000-8000-000000000001",
        "user_id": "u1",
        "seq": 2,
        "epoch": "e",
        "type": "job:progress",
        "at": "2026-12-04T10:00:00Z",
        "data": {"progress": 40.0, "step": "a"},
    }
    assert_valid("AnyEvent", event)
    with pytest.raises(AssertionError):
        assert_valid("AnyEvent", {**event, "data": {"progress": 140.0, "step": "a"}})
    with pytest.raises(AssertionError):
        assert_valid("AnyEvent", {**event, "type": "job:exploded"})
    with pytest.raises(AssertionError):
        assert_valid("ErrorAck", {"ok": False, "error": {"code": "no_such_code", "message": "m"}})


async def test_a_real_server_s_acks_and_events_match_the_schema(live_server: LiveServer) -> None:
    user = await connect_user(live_server, "schema-user")
    created = await user.ok("job:create", {"type": "research", "input": {"q": 1}, "tags": ["a"]})
    assert_valid("CreateAck", created)
    job_id = created["job"]["id"]
    assert_valid("SubscribeAck", await user.ok("job:subscribe", {"job_id": job_id}))
    worker = await connect_worker(live_server)
    claim = await worker.ok("claim", {"types": ["research"]})
    assert_valid("ClaimAck", claim)
    lease = {"job_id": job_id, "lease": claim["lease"]}
    assert_valid("OkAck", await worker.ok("progress", {**lease, "progress": 30, "step": "s"}))
    assert_valid("CheckpointAck", await worker.ok("checkpoint", {**lease, "data": {"k": 1}}))
    assert_valid("HeartbeatAck", await worker.ok("heartbeat", lease))
    assert_valid("OkAck", await worker.ok("complete", {**lease, "result": {"r": 1}}))
    await user.events.wait_for_job_event(job_id, "job:completed")
    sync = await user.ok("job:sync", {"cursors": {job_id: 0, "nope": 0}})
    assert_valid("SyncAck", sync)
    assert_valid("ErrorAck", await user.call("job:pause", {"job_id": job_id}))
    assert_valid(
        "RefreshAck", await user.ok("auth:refresh", {"token": live_server.token("schema-user")})
    )
    for event in user.events.of_job(job_id):
        assert_valid("AnyEvent", event)
        assert_valid(PUSHES["/"][event["type"]], event)
