// Snapshots and events for unit tests, shaped like the server's.

import { RESTART_CLEARS } from "../../dist/fold.js";

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
    ...RESTART_CLEARS, // what a new job holds: progress 0, no step, result, error, times, …
    attempt: 0,
    pause_requested: false,
    created_at: "2026-12-04T10:00:00.000000Z",
    updated_at: "2026-12-04T10:00:00.000000Z",
    seq: 1,
    epoch: EPOCH,
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
