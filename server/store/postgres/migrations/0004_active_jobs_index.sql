-- MAX_ACTIVE_JOBS_PER_USER counts a user's created, running and paused jobs before each
-- create (issue 18). The count read every job of the user, ended ones included, through
-- jobs_user_created_idx and the heap, so its cost grew with the user's history. This index
-- holds the active jobs only: the count reads as many entries as the user has active jobs.
-- Its predicate is the one queries.COUNT_ACTIVE states (rules.ACTIVE_STATES); a change of
-- state already updates the row outside HOT (the claim indexes' predicates name the state),
-- so the index adds an entry on insert and on each change into an active state, nothing to
-- heartbeats, progress or checkpoints.
CREATE INDEX jobs_active_user_idx ON jobs (user_id)
    WHERE state IN ('created', 'running', 'paused');
