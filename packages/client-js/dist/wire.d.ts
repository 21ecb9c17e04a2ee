/**
 * The wire shapes the client reads and sends (docs/protocol.md). Hand-written until
 * src/generated/wire.ts (from packages/shared/schema/wire.schema.json) replaces them.
 */
export type JobState = "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
export interface JobErrorBody {
    code: string;
    message: string;
    retryable: boolean;
}
export interface RetryPolicy {
    max_attempts: number;
    backoff_s: number;
    backoff_factor: number;
    max_backoff_s: number;
}
/** The job snapshot (schema v1 fields, and the v2 ones a v2 server adds). */
export interface Job {
    schema_version: number;
    id: string;
    user_id: string;
    type: string;
    input: Record<string, unknown>;
    state: JobState;
    progress: number;
    step: string | null;
    result: unknown;
    error: JobErrorBody | null;
    has_checkpoint: boolean;
    checkpoint_at: string | null;
    attempt: number;
    recovery_attempts: number;
    pause_requested: boolean;
    created_at: string;
    updated_at: string;
    started_at: string | null;
    paused_at: string | null;
    completed_at: string | null;
    failed_at: string | null;
    cancelled_at: string | null;
    last_heartbeat_at: string | null;
    seq: number;
    epoch: string;
    priority?: number;
    run_at?: string | null;
    tags?: string[];
    parent_id?: string | null;
    timeout_s?: number | null;
    retry?: RetryPolicy;
    retries?: number;
    idempotency_key?: string | null;
    correlation_id?: string | null;
}
export type EventType = "job:created" | "job:started" | "job:progress" | "job:checkpoint" | "job:pause_requested" | "job:paused" | "job:recovery" | "job:resumed" | "job:completed" | "job:failed" | "job:cancelled" | "job:restarted" | "job:retrying";
/** One event of a job's stream. */
export interface JobEvent {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: EventType | string;
    at: string;
    data: Record<string, unknown>;
}
/** A replay answer: the `job:subscribe` ack, one `job:sync` slot, `GET …/events`. */
export interface ReplayAnswer {
    recovered: boolean;
    events: JobEvent[];
    job: Job;
}
export interface ErrorEnvelope {
    code: string;
    message: string;
    details?: Record<string, unknown>;
}
/** A `job:sync` slot: an answer, a refusal, or "ask again" past the reply budget. */
export type SyncSlot = ReplayAnswer | {
    error: ErrorEnvelope;
} | {
    truncated: true;
};
export interface JobPage {
    items: Job[];
    next_cursor: string | null;
}
/** `POST /api/jobs`: `type` and the optional v1/v2 fields. */
export interface CreateJob {
    type: string;
    input?: Record<string, unknown>;
    priority?: number;
    run_at?: string | null;
    tags?: string[];
    parent_id?: string | null;
    timeout_s?: number | null;
    retry?: Partial<RetryPolicy>;
    idempotency_key?: string | null;
    correlation_id?: string | null;
}
/** `GET /api/jobs` filters (each optional); `cursor` is the previous page's `next_cursor`. */
export interface ListQuery {
    state?: JobState;
    type?: string;
    limit?: number;
    cursor?: string;
    tag?: string;
    parent_id?: string;
    priority?: number;
    user_id?: string;
}
