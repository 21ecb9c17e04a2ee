-- The rules of one column each move from CHECK constraints of jobs into domains, under the
-- same names (issue 18: heartbeats on Postgres).
--
-- PostgreSQL checks every CHECK constraint of a table on every row an UPDATE writes,
-- whatever columns it sets, and reads each constraint's expression anew for every statement
-- (stringToNode, then planning and preparing it). A heartbeat sets last_heartbeat_at alone,
-- yet each batch paid for all 21 of jobs' constraints: 47% of the backend's instructions for
-- a batch of 25 (callgrind, docs/performance.md), the type format's regular expression
-- alone 17k instructions a row. A domain's CHECK runs only where a value becomes one of the
-- domain: on INSERT, and when an UPDATE assigns that column. So each rule below still holds
-- for every row written, and is checked only where its column can have changed.
--
-- Left as constraints of the table: the rules that tie several columns together (state and
-- lease, times, checkpoint meta, counters), and tags' (a domain over an array would change
-- how the tags index and its operators resolve).
--
-- Every existing row already passed these rules as table constraints. A domain with a
-- constraint makes ALTER COLUMN TYPE rewrite the table; without one it does not (and the
-- indexes stay), so each domain gets its constraint after its column changed type, NOT VALID
-- (existing rows are known good), then validated, which reads the table once per domain
-- and writes nothing.

CREATE DOMAIN job_type_name AS text;
CREATE DOMAIN job_input AS jsonb;
CREATE DOMAIN job_progress AS double precision;
CREATE DOMAIN job_step AS text;
CREATE DOMAIN job_error AS jsonb;
CREATE DOMAIN job_schema_version AS integer;
CREATE DOMAIN job_priority AS integer;
CREATE DOMAIN job_timeout AS double precision;
CREATE DOMAIN job_retries AS integer;
CREATE DOMAIN job_retry AS jsonb;

ALTER TABLE jobs
    DROP CONSTRAINT jobs_type_format,
    DROP CONSTRAINT jobs_input_object,
    DROP CONSTRAINT jobs_progress_range,
    DROP CONSTRAINT jobs_step_length,
    DROP CONSTRAINT jobs_error_shape,
    DROP CONSTRAINT jobs_schema_version,
    DROP CONSTRAINT jobs_priority_range,
    DROP CONSTRAINT jobs_timeout_positive,
    DROP CONSTRAINT jobs_retries_count,
    DROP CONSTRAINT jobs_retry_shape,
    ALTER COLUMN type TYPE job_type_name,
    ALTER COLUMN input TYPE job_input,
    ALTER COLUMN progress TYPE job_progress,
    ALTER COLUMN step TYPE job_step,
    ALTER COLUMN error TYPE job_error,
    ALTER COLUMN schema_version TYPE job_schema_version,
    ALTER COLUMN priority TYPE job_priority,
    ALTER COLUMN timeout_s TYPE job_timeout,
    ALTER COLUMN retries TYPE job_retries,
    ALTER COLUMN retry TYPE job_retry;

ALTER DOMAIN job_type_name
    ADD CONSTRAINT jobs_type_format CHECK (VALUE ~ '^[a-z0-9_.-]{1,64}$') NOT VALID;
ALTER DOMAIN job_input
    ADD CONSTRAINT jobs_input_object CHECK (jsonb_typeof(VALUE) = 'object') NOT VALID;
-- NaN compares greater than every number in Postgres, so this refuses it too.
ALTER DOMAIN job_progress
    ADD CONSTRAINT jobs_progress_range CHECK (VALUE >= 0 AND VALUE <= 100) NOT VALID;
ALTER DOMAIN job_step
    ADD CONSTRAINT jobs_step_length CHECK (char_length(VALUE) <= 256) NOT VALID;
ALTER DOMAIN job_error
    ADD CONSTRAINT jobs_error_shape CHECK (
        VALUE IS NULL
        OR (jsonb_typeof(VALUE) = 'object' AND VALUE ? 'code' AND VALUE ? 'message')
    ) NOT VALID;
ALTER DOMAIN job_schema_version
    ADD CONSTRAINT jobs_schema_version CHECK (VALUE >= 1) NOT VALID;
ALTER DOMAIN job_priority
    ADD CONSTRAINT jobs_priority_range CHECK (VALUE BETWEEN -100 AND 100) NOT VALID;
ALTER DOMAIN job_timeout
    ADD CONSTRAINT jobs_timeout_positive CHECK (VALUE > 0) NOT VALID;
ALTER DOMAIN job_retries
    ADD CONSTRAINT jobs_retries_count CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN job_retry
    ADD CONSTRAINT jobs_retry_shape CHECK (
        jsonb_typeof(VALUE) = 'object'
        AND VALUE ?& ARRAY['max_attempts', 'backoff_s', 'backoff_factor', 'max_backoff_s']
    ) NOT VALID;

ALTER DOMAIN job_type_name VALIDATE CONSTRAINT jobs_type_format;
ALTER DOMAIN job_input VALIDATE CONSTRAINT jobs_input_object;
ALTER DOMAIN job_progress VALIDATE CONSTRAINT jobs_progress_range;
ALTER DOMAIN job_step VALIDATE CONSTRAINT jobs_step_length;
ALTER DOMAIN job_error VALIDATE CONSTRAINT jobs_error_shape;
ALTER DOMAIN job_schema_version VALIDATE CONSTRAINT jobs_schema_version;
ALTER DOMAIN job_priority VALIDATE CONSTRAINT jobs_priority_range;
ALTER DOMAIN job_timeout VALIDATE CONSTRAINT jobs_timeout_positive;
ALTER DOMAIN job_retries VALIDATE CONSTRAINT jobs_retries_count;
ALTER DOMAIN job_retry VALIDATE CONSTRAINT jobs_retry_shape;
