// Snapshots and events for unit tests, shaped like the server's.

export const JOB_ID = "5b0c7c6e-4c36-4a8e-9d0f-2f1b6f0e8a11";
export const EPOCH = "a3c9";

export function snapshot(fields = {}) {
  return {
    schema_version: 2,
    id: JOB_ID,
    user_id: "u1",
    type: "research",
    input: {},
    state: "created",
    progress: 0,
    step: null,
    result: null,
    error: null,
    has_checkpoint: false,
    checkpoint_at: null,
    attempt: 0,
    recovery_attempts: 0,
    pause_requested: false,
    created_at: "2026-12-04T10:00:00.000000Z",
    updated_at: "2026-12-04T10:00:00.000000Z",
    started_at: null,
    paused_at: null,
    completed_at: null,
    failed_at: null,
    cancelled_at: null,
    last_heartbeat_at: null,
    seq: 1,
    epoch: EPOCH,
    retries: 0,
    run_at: null,
    ...fields,
  };
}

export function event(seq, type = "job:progress", data = { progress: seq, step: `step ${seq}` }, fields = {}) {
  return {
    job_id: JOB_ID,
    user_id: "u1",
    seq,
    epoch: EPOCH,
    type,
    at: `2026-12-04T10:00:${String(seq).padStart(2, "0")}.000000Z`,
    data,
    ...fields,
  };
}
