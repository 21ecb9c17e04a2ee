-- jobspine schema v1: jobs, their event streams, checkpoints and audit trails.
--
-- The database enforces the contract on its own (state machine, value ranges, lease and
-- checkpoint bookkeeping), so neither a bug nor a manual UPDATE can put a job in a state
-- the contract does not know.

CREATE TYPE job_state AS ENUM ('created', 'running', 'paused', 'completed', 'failed', 'cancelled');

-- The contract's transition table, as data: the trigger below refuses any other change.
CREATE TABLE job_transitions (
    from_state job_state NOT NULL,
    to_state   job_state NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

INSERT INTO job_transitions (from_state, to_state) VALUES
    ('created',   'running'),
    ('created',   'paused'),
    ('created',   'cancelled'),
    ('running',   'cancelled'),
    ('paused',    'cancelled'),
    ('running',   'completed'),
    ('running',   'failed'),
    ('running',   'paused'),
    ('paused',    'created'),
    ('failed',    'created'),
    ('cancelled', 'created');

-- One row per job: the public record (schema v1) plus lease and checkpoint bookkeeping.
-- fillfactor 80 leaves room on each page so that heartbeat and progress UPDATEs, which
-- touch no indexed column, stay HOT (no index writes, no bloat).
CREATE TABLE jobs (
    id                  uuid             PRIMARY KEY,
    user_id             text             NOT NULL,
    type                text             NOT NULL,
    input               jsonb            NOT NULL DEFAULT '{}',
    state               job_state        NOT NULL DEFAULT 'created',
    progress            double precision NOT NULL DEFAULT 0,
    step                text,
    result              jsonb,
    error               jsonb,
    has_checkpoint      boolean          NOT NULL DEFAULT false,
    checkpoint_at       timestamptz,
    attempt             integer          NOT NULL DEFAULT 0,
    recovery_attempts   integer          NOT NULL DEFAULT 0,
    pause_requested     boolean          NOT NULL DEFAULT false,
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL,
    started_at          timestamptz,
    paused_at           timestamptz,
    completed_at        timestamptz,
    failed_at           timestamptz,
    cancelled_at        timestamptz,
    last_heartbeat_at   timestamptz,
    seq                 bigint           NOT NULL DEFAULT 0,
    epoch               text             NOT NULL,
    schema_version      integer          NOT NULL DEFAULT 1,
    -- The current attempt's fencing token; set by a claim, cleared when the job leaves running.
    lease               text,
    -- Who claimed the job last (kept after the attempt, for operators).
    worker_id           text,
    -- Everything about the checkpoint but its data (job_checkpoints holds that).
    checkpoint_size     integer,
    checkpoint_progress double precision,
    checkpoint_keys     text[],

    CONSTRAINT jobs_type_format CHECK (type ~ '^[a-z0-9_.-]{1,64}$'),
    CONSTRAINT jobs_input_object CHECK (jsonb_typeof(input) = 'object'),
    -- NaN compares greater than every number in Postgres, so this refuses it too.
    CONSTRAINT jobs_progress_range CHECK (progress >= 0 AND progress <= 100),
    CONSTRAINT jobs_step_length CHECK (char_length(step) <= 256),
    CONSTRAINT jobs_error_shape CHECK (
        error IS NULL
        OR (jsonb_typeof(error) = 'object' AND error ? 'code' AND error ? 'message')
    ),
    CONSTRAINT jobs_counters CHECK (attempt >= 0 AND recovery_attempts >= 0 AND seq >= 1),
    CONSTRAINT jobs_schema_version CHECK (schema_version >= 1),
    -- A running job always has a lease and only a running job has one: fencing relies on it.
    CONSTRAINT jobs_lease_iff_running CHECK ((state = 'running') = (lease IS NOT NULL)),
    CONSTRAINT jobs_pause_request_running CHECK (NOT pause_requested OR state = 'running'),
    CONSTRAINT jobs_running_times CHECK (
        state <> 'running' OR (started_at IS NOT NULL AND last_heartbeat_at IS NOT NULL)
    ),
    CONSTRAINT jobs_completed_at CHECK (state <> 'completed' OR completed_at IS NOT NULL),
    CONSTRAINT jobs_failed_at CHECK (state <> 'failed' OR (failed_at IS NOT NULL AND error IS NOT NULL)),
    CONSTRAINT jobs_cancelled_at CHECK (state <> 'cancelled' OR cancelled_at IS NOT NULL),
    -- The checkpoint flag, its time and its meta are set and cleared together.
    CONSTRAINT jobs_checkpoint_flag CHECK (has_checkpoint = (checkpoint_at IS NOT NULL)),
    CONSTRAINT jobs_checkpoint_meta CHECK (
        num_nulls(checkpoint_at, checkpoint_size, checkpoint_progress, checkpoint_keys) IN (0, 4)
    ),
    CONSTRAINT jobs_checkpoint_values CHECK (
        checkpoint_size >= 0 AND checkpoint_progress >= 0 AND checkpoint_progress <= 100
    )
) WITH (fillfactor = 80);

-- A user's jobs, newest first (GET /api/jobs, keyset pagination on (created_at, id)).
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC);
-- Every user's jobs, newest first (an admin's listing).
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
-- Claims: the oldest claimable job of some types, or of any type. Partial, so the indexes
-- hold only the queue, not the history.
CREATE INDEX jobs_claim_type_idx ON jobs (type, created_at, id) WHERE state = 'created';
CREATE INDEX jobs_claim_any_idx ON jobs (created_at, id) WHERE state = 'created';
-- The supervisor's stale scan: only running jobs. It deliberately does not index
-- last_heartbeat_at: every heartbeat rewrites it, and a column in no index keeps those
-- UPDATEs HOT. The running set is small (bounded by the workers), so filtering and sorting
-- it by heartbeat is cheap.
CREATE INDEX jobs_running_idx ON jobs (id) WHERE state = 'running';

-- Enforce the transition table whatever the client: the store, a script or psql.
CREATE FUNCTION jobs_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'a new job must be created, not %', NEW.state
            USING ERRCODE = 'check_violation', TABLE = 'jobs', COLUMN = 'state';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM job_transitions WHERE from_state = OLD.state AND to_state = NEW.state
    ) THEN
        RAISE EXCEPTION 'invalid job state transition: % -> %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation', TABLE = 'jobs', COLUMN = 'state',
                  CONSTRAINT = 'job_transitions';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_state_transition
    BEFORE UPDATE ON jobs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobs_check_transition();

CREATE TRIGGER jobs_initial_state
    BEFORE INSERT ON jobs
    FOR EACH ROW
    WHEN (NEW.state <> 'created')
    EXECUTE FUNCTION jobs_check_transition();

-- A job's event stream; only the last BACKLOG_SIZE events are kept. The primary key
-- serves "events of a job after seq", in order.
CREATE TABLE job_events (
    job_id uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    bigint      NOT NULL CHECK (seq >= 1),
    type   text        NOT NULL,
    at     timestamptz NOT NULL,
    data   jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, seq)
);

-- The latest checkpoint's data, apart from the job row: it can be large and is read rarely.
CREATE TABLE job_checkpoints (
    job_id uuid  PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    data   jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object')
);

-- Who paused, resumed, cancelled, restarted; in the order it happened.
CREATE TABLE job_audit (
    id      bigserial   PRIMARY KEY,
    job_id  uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    action  text        NOT NULL,
    actor   text        NOT NULL,
    at      timestamptz NOT NULL,
    details jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX job_audit_job_idx ON job_audit (job_id, id);
