-- The state-transition trigger fires only for UPDATEs that assign state (issue 18:
-- heartbeats and progress on Postgres).
--
-- A row trigger's WHEN clause is read anew (stringToNode) for every statement and evaluated
-- for every row the statement updates: for a batch of 25 heartbeats, which set
-- last_heartbeat_at alone, this trigger cost 129k of 1,786k backend instructions per
-- statement (callgrind, docs/performance.md), to find each time that the state had not
-- changed. BEFORE UPDATE OF state fires only when the UPDATE's SET list names state, and
-- no other trigger changes NEW.state, so every UPDATE that can change a job's state is
-- still checked against job_transitions, and the others skip the trigger entirely.

DROP TRIGGER jobs_state_transition ON jobs;

CREATE TRIGGER jobs_state_transition
    BEFORE UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobs_check_transition();
