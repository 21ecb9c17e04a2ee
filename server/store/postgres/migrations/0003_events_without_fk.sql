-- Events without a foreign key (issue 18): the key's check ran on every event inserted (a
-- lookup of the job row, and a FOR KEY SHARE lock on it, although the same transaction
-- has just updated that row and reserved the event's seq there). Events are only ever
-- inserted by the statement or transaction that changed their job, so the key guarded
-- nothing the store does not already guarantee; what it did on delete, removing a job's
-- events with the job, is this statement-level trigger: one DELETE per deleting statement
-- (a retention batch deletes its jobs' events together).

ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;

CREATE FUNCTION jobs_delete_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_events AS e USING deleted_jobs AS d WHERE e.job_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_delete_events
    AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION jobs_delete_events();
