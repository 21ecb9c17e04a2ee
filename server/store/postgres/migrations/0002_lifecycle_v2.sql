-- jobspine schema v2 (contract v2, "Additions"): priorities, delayed jobs, tags, parents,
-- timeouts, automatic retries, idempotent create, delete and retention.
--
-- Upgrades a database holding v1 jobs in place: every new column has the contract's
-- default, so each v1 row reads as the v2 record the shared migration would give it.

ALTER TABLE jobs
    ADD COLUMN priority        integer          NOT NULL DEFAULT 0,
    ADD COLUMN run_at          timestamptz,
    ADD COLUMN tags            text[]           NOT NULL DEFAULT '{}',
    ADD COLUMN parent_id       uuid,
    ADD COLUMN timeout_s       double precision,
    ADD COLUMN retry           jsonb            NOT NULL DEFAULT
        '{"max_attempts": 1, "backoff_s": 5.0, "backoff_factor": 2.0, "max_backoff_s": 300.0}',
    ADD COLUMN retries         integer          NOT NULL DEFAULT 0,
    ADD COLUMN idempotency_key text,
    ADD COLUMN correlation_id  text,
    ADD CONSTRAINT jobs_priority_range CHECK (priority BETWEEN -100 AND 100),
    ADD CONSTRAINT jobs_tags_count CHECK (cardinality(tags) <= 16),
    ADD CONSTRAINT jobs_timeout_positive CHECK (timeout_s > 0),
    ADD CONSTRAINT jobs_retries_count CHECK (retries >= 0),
    ADD CONSTRAINT jobs_retry_shape CHECK (
        jsonb_typeof(retry) = 'object'
        AND retry ?& ARRAY['max_attempts', 'backoff_s', 'backoff_factor', 'max_backoff_s']
    );

ALTER TABLE jobs ALTER COLUMN schema_version SET DEFAULT 2;
UPDATE jobs SET schema_version = 2 WHERE schema_version < 2;

-- The new row of the state machine: a retryable failure with attempts left.
INSERT INTO job_transitions (from_state, to_state) VALUES ('running', 'created');

-- Claims: highest priority first, then the oldest. The v1 claim indexes ordered by age only.
DROP INDEX jobs_claim_type_idx;
DROP INDEX jobs_claim_any_idx;
CREATE INDEX jobs_claim_type_idx ON jobs (type, priority DESC, created_at, id)
    WHERE state = 'created';
CREATE INDEX jobs_claim_any_idx ON jobs (priority DESC, created_at, id)
    WHERE state = 'created';
-- Delayed jobs becoming due (the supervisor wakes idle workers for them).
CREATE INDEX jobs_delayed_idx ON jobs (run_at) WHERE state = 'created' AND run_at IS NOT NULL;
-- MAX_RUNNING_PER_USER: a user's running jobs, counted per claim.
CREATE INDEX jobs_running_user_idx ON jobs (user_id) WHERE state = 'running';
-- Filters of GET /api/jobs.
CREATE INDEX jobs_tags_idx ON jobs USING gin (tags);
CREATE INDEX jobs_parent_idx ON jobs (parent_id, created_at DESC, id DESC)
    WHERE parent_id IS NOT NULL;
-- Retention: final jobs by the time they became final. The columns it reads are set once
-- per final state (not by heartbeats or progress), so those UPDATEs stay HOT.
CREATE INDEX jobs_finished_idx ON jobs ((
    CASE state
        WHEN 'completed' THEN completed_at
        WHEN 'failed' THEN failed_at
        WHEN 'cancelled' THEN cancelled_at
    END
)) WHERE state IN ('completed', 'failed', 'cancelled');

-- Idempotency keys, per user. A row older than IDEMPOTENCY_TTL_S may be taken over by a new
-- create; deleting the job frees its key. The key is claimed before the job is inserted, in
-- the same transaction, hence the deferred foreign key.
CREATE TABLE job_idempotency (
    user_id    text        NOT NULL,
    key        text        NOT NULL,
    job_id     uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE
                           DEFERRABLE INITIALLY DEFERRED,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX job_idempotency_job_idx ON job_idempotency (job_id);
