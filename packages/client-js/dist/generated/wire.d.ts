/** Any job event; its type names its data. */
export type AnyEvent = CreatedEvent | StartedEvent | ProgressEvent | CheckpointEvent | PauseRequestedEvent | PausedEvent | RecoveryEvent | ResumedEvent | CompletedEvent | FailedEvent | CancelledEvent | RestartedEvent | RetryingEvent;
export type AuditEntry = {
    action: string;
    actor: string;
    at: string;
    details: {
        [key: string]: unknown;
    };
};
export type AuditPage = {
    items: Array<AuditEntry>;
    next_cursor?: string | null;
};
export type CancelledData = {
    previous_state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
};
/** The job:cancelled event. */
export type CancelledEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:cancelled";
    at: string;
    data: CancelledData;
};
export type Checkpoint = {
    data: {
        [key: string]: unknown;
    };
    saved_at: string;
    size_bytes: number;
    progress: number | null;
};
export type CheckpointAck = {
    ok: true;
    checkpoint_at: string;
};
/** progress only when the checkpoint carried one. */
export type CheckpointData = {
    size_bytes: number;
    progress?: number;
};
/** The job:checkpoint event. */
export type CheckpointEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:checkpoint";
    at: string;
    data: CheckpointData;
};
export type CheckpointPayload = {
    job_id: string;
    lease: string;
    data: {
        [key: string]: unknown;
    };
    progress?: number;
};
export type ClaimAck = {
    ok: true;
    job: Job | null;
    lease: string | null;
    checkpoint: {
        [key: string]: unknown;
    } | null;
};
export type ClaimPayload = {
    types?: Array<string>;
    worker_id?: string;
};
export type CompletePayload = {
    job_id: string;
    lease: string;
    result?: unknown;
};
export type CompletedData = {
    result: unknown;
};
/** The job:completed event. */
export type CompletedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:completed";
    at: string;
    data: CompletedData;
};
export type CreateAck = {
    ok: true;
    job: Job;
    existing?: true;
};
/** A new job: type and input, and the optional fields of contract v2. */
export type CreateJob = {
    type: string;
    input?: {
        [key: string]: unknown;
    };
    priority?: number;
    run_at?: string | null;
    tags?: Array<string>;
    parent_id?: string | null;
    timeout_s?: number | null;
    /** Fields of RetryPolicy, each optional. */
    retry?: {
        [key: string]: unknown;
    };
    idempotency_key?: string | null;
    /** Defaults to the request's X-Request-ID. */
    correlation_id?: string | null;
};
/** The snapshot at seq 1. */
export type CreatedData = {
    job: Job;
};
/** The job:created event. */
export type CreatedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:created";
    at: string;
    data: CreatedData;
};
export type Error = {
    code: "bad_request" | "unauthorized" | "forbidden" | "not_found" | "method_not_allowed" | "invalid_transition" | "conflict" | "lease_lost" | "invalid_progress" | "payload_too_large" | "validation_error" | "rate_limited" | "unavailable" | "internal_error";
    message: string;
    details?: {
        [key: string]: unknown;
    };
};
export type ErrorAck = {
    ok: false;
    error: Error;
};
/** Every failure: {error: {code, message, details?}} */
export type ErrorEnvelope = {
    error: Error;
};
/** One entry of a job's event stream; its Socket.IO event name is `type`. */
export type Event = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:created" | "job:started" | "job:progress" | "job:checkpoint" | "job:pause_requested" | "job:paused" | "job:recovery" | "job:resumed" | "job:completed" | "job:failed" | "job:cancelled" | "job:restarted" | "job:retrying";
    at: string;
    data: {
        [key: string]: unknown;
    };
};
export type FailPayload = {
    job_id: string;
    lease: string;
    error: {
        message: string;
        code?: string;
        retryable?: boolean;
    };
};
export type FailedData = {
    error: JobError;
};
/** The job:failed event. */
export type FailedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:failed";
    at: string;
    data: FailedData;
};
export type Health = {
    status: "ok";
};
export type HeartbeatAck = {
    ok: true;
    pause_requested: boolean;
};
/** A job as clients see it: every field of the contract's snapshot, nothing more. */
export type Job = {
    id: string;
    user_id: string;
    type: string;
    input: {
        [key: string]: unknown;
    };
    state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
    progress: number;
    step: string | null;
    result: unknown;
    error: JobError | null;
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
    priority: number;
    run_at: string | null;
    tags: Array<string>;
    parent_id: string | null;
    timeout_s: number | null;
    retry: RetryPolicy;
    retries: number;
    idempotency_key: string | null;
    correlation_id: string | null;
    schema_version: number;
};
export type JobAck = {
    ok: true;
    job: Job;
};
/** Why a job failed: `{code, message, retryable}`. */
export type JobError = {
    code: string;
    message: string;
    retryable: boolean;
};
export type JobIdPayload = {
    job_id: string;
};
/** A page of jobs, newest first; next_cursor fetches the next one. */
export type JobPage = {
    items: Array<Job>;
    next_cursor: string | null;
};
/** A job snapshot of schema v1 (a v1 server's, or a v1 client's view). */
export type JobV1 = {
    id: string;
    user_id: string;
    type: string;
    input: {
        [key: string]: unknown;
    };
    state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
    progress: number;
    step: string | null;
    result: unknown;
    error: JobError | null;
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
    schema_version: 1;
};
export type JobsAvailable = {
    types: Array<string>;
};
export type LeasePayload = {
    job_id: string;
    lease: string;
};
export type LeaseRevoked = {
    job_id: string;
    state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
    reason: "cancelled" | "stalled" | "timeout";
};
export type OkAck = {
    ok: true;
};
export type PauseRequestedData = {};
/** The job:pause_requested event. */
export type PauseRequestedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:pause_requested";
    at: string;
    data: PauseRequestedData;
};
export type PausedData = {
    reason: "user" | "stalled";
};
/** The job:paused event. */
export type PausedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:paused";
    at: string;
    data: PausedData;
};
export type PausedPayload = {
    job_id: string;
    lease: string;
    checkpoint?: {
        [key: string]: unknown;
    };
};
export type ProgressData = {
    progress: number;
    step: string | null;
};
/** The job:progress event. */
export type ProgressEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:progress";
    at: string;
    data: ProgressData;
};
export type ProgressPayload = {
    job_id: string;
    lease: string;
    progress: number;
    step?: string | null;
};
export type Readiness = {
    status: string;
    checks: Array<string>;
};
export type RecoveryAck = {
    ok: true;
    options: RecoveryOptions;
};
export type RecoveryCheck = {
    recovered: boolean;
    job: Job;
};
export type RecoveryData = RecoveryOptions;
/** The job:recovery event. */
export type RecoveryEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:recovery";
    at: string;
    data: RecoveryData;
};
export type RecoveryOptions = {
    job_id: string;
    state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
    resumable: boolean;
    restartable: boolean;
    checkpoint: {
        present: boolean;
        size_bytes: number | null;
        keys: Array<string>;
        saved_at: string | null;
        progress: number | null;
    };
    recovery_attempts: number;
    max_recovery_attempts: number;
    recovery_attempts_left: number;
};
export type RefreshAck = {
    ok: true;
    /** The new exp (Unix seconds). */
    exp: number;
};
export type RefreshPayload = {
    token: string;
};
/** Events after after_seq, or the snapshot to restart from (recovered). */
export type Replay = {
    recovered: boolean;
    events: Array<Event>;
    job: Job;
};
/** Optional new input. */
export type RestartJob = {
    input?: {
        [key: string]: unknown;
    };
};
export type RestartPayload = {
    job_id: string;
    input?: {
        [key: string]: unknown;
    };
};
export type RestartedData = {
    previous_state: "created" | "running" | "paused" | "completed" | "failed" | "cancelled";
};
/** The job:restarted event. */
export type RestartedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:restarted";
    at: string;
    data: RestartedData;
};
export type ResumedData = {
    has_checkpoint: boolean;
};
/** The job:resumed event. */
export type ResumedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:resumed";
    at: string;
    data: ResumedData;
};
/** Automatic retries of retryable failures (contract v2): the n-th retry waits `min(max_backoff_s, backoff_s * backoff_factor ** n)` seconds (n counts from 0). */
export type RetryPolicy = {
    max_attempts: number;
    backoff_s: number;
    backoff_factor: number;
    max_backoff_s: number;
};
export type RetryingData = {
    error: JobError;
    attempt: number;
    run_at: string | null;
};
/** The job:retrying event. */
export type RetryingEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:retrying";
    at: string;
    data: RetryingData;
};
/** The socket's token expired; it is closed next. */
export type SessionExpired = {};
export type StartedData = {
    attempt: number;
    worker_id: string;
    /** The claim handed over a checkpoint. */
    resumed: boolean;
};
/** The job:started event. */
export type StartedEvent = {
    job_id: string;
    user_id: string;
    seq: number;
    epoch: string;
    type: "job:started";
    at: string;
    data: StartedData;
};
export type Stats = {
    by_state: {
        created: number;
        running: number;
        paused: number;
        completed: number;
        failed: number;
        cancelled: number;
    };
    total: number;
};
export type SubscribeAck = {
    ok: true;
    job: Job;
    events: Array<AnyEvent>;
    recovered: boolean;
};
export type SubscribePayload = {
    job_id: string;
    after_seq?: number;
    epoch?: string;
};
/** The supervisor's last scans. */
export type SupervisorStatus = {
    [key: string]: unknown;
};
export type SyncAck = {
    ok: true;
    results: {
        [key: string]: SyncSlot;
    };
};
export type SyncPayload = {
    cursors: {
        [key: string]: number;
    };
    epochs?: {
        [key: string]: string;
    };
};
export type SyncSlot = {
    recovered: boolean;
    events: Array<AnyEvent>;
    job: Job;
} | {
    error: Error;
} | {
    truncated: true;
};
export type WorkerPauseRequested = {
    job_id: string;
};
/** Calls on namespace /: payload, ack on success, ack on error. */
export type UserCalls = {
    "job:subscribe": {
        payload: SubscribePayload;
        ack: SubscribeAck;
        error: ErrorAck;
    };
    "job:unsubscribe": {
        payload: JobIdPayload;
        ack: OkAck;
        error: ErrorAck;
    };
    "job:sync": {
        payload: SyncPayload;
        ack: SyncAck;
        error: ErrorAck;
    };
    "job:create": {
        payload: CreateJob;
        ack: CreateAck;
        error: ErrorAck;
    };
    "job:pause": {
        payload: JobIdPayload;
        ack: JobAck;
        error: ErrorAck;
    };
    "job:resume": {
        payload: JobIdPayload;
        ack: JobAck;
        error: ErrorAck;
    };
    "job:cancel": {
        payload: JobIdPayload;
        ack: JobAck;
        error: ErrorAck;
    };
    "job:restart": {
        payload: RestartPayload;
        ack: JobAck;
        error: ErrorAck;
    };
    "job:recovery": {
        payload: JobIdPayload;
        ack: RecoveryAck;
        error: ErrorAck;
    };
    "auth:refresh": {
        payload: RefreshPayload;
        ack: RefreshAck;
        error: ErrorAck;
    };
};
/** Calls on namespace /workers: payload, ack on success, ack on error. */
export type WorkersCalls = {
    claim: {
        payload: ClaimPayload;
        ack: ClaimAck;
        error: ErrorAck;
    };
    heartbeat: {
        payload: LeasePayload;
        ack: HeartbeatAck;
        error: ErrorAck;
    };
    progress: {
        payload: ProgressPayload;
        ack: OkAck;
        error: ErrorAck;
    };
    checkpoint: {
        payload: CheckpointPayload;
        ack: CheckpointAck;
        error: ErrorAck;
    };
    paused: {
        payload: PausedPayload;
        ack: OkAck;
        error: ErrorAck;
    };
    complete: {
        payload: CompletePayload;
        ack: OkAck;
        error: ErrorAck;
    };
    fail: {
        payload: FailPayload;
        ack: OkAck;
        error: ErrorAck;
    };
    "auth:refresh": {
        payload: RefreshPayload;
        ack: RefreshAck;
        error: ErrorAck;
    };
};
/** What the server emits on namespace /, by event name. */
export type UserPushes = {
    "job:created": CreatedEvent;
    "job:started": StartedEvent;
    "job:progress": ProgressEvent;
    "job:checkpoint": CheckpointEvent;
    "job:pause_requested": PauseRequestedEvent;
    "job:paused": PausedEvent;
    "job:recovery": RecoveryEvent;
    "job:resumed": ResumedEvent;
    "job:completed": CompletedEvent;
    "job:failed": FailedEvent;
    "job:cancelled": CancelledEvent;
    "job:restarted": RestartedEvent;
    "job:retrying": RetryingEvent;
    "session:expired": SessionExpired;
};
/** What the server emits on namespace /workers, by event name. */
export type WorkersPushes = {
    "lease:revoked": LeaseRevoked;
    "jobs:available": JobsAvailable;
    "job:pause_requested": WorkerPauseRequested;
    "session:expired": SessionExpired;
};
