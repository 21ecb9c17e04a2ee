/**
 * How one event changes a job: the JS fold, proven equal to the server's snapshot by the
 * conformance fixtures (test/unit/conformance.test.mjs). Pure: returns a new job.
 *
 * An event carries only part of what the server changed (a resumed claim's progress comes
 * from the checkpoint, which no event carries); the snapshot is the truth for the rest,
 * and the client adopts it whenever an answer brings one.
 */
import { isRecord } from "./errors.js";
/** The fields a restart clears (docs/protocol.md, "Job snapshot", Decisions): as a new job
 * holds them. */
export const RESTART_CLEARS = {
    progress: 0,
    step: null,
    result: null,
    error: null,
    has_checkpoint: false,
    checkpoint_at: null,
    recovery_attempts: 0,
    started_at: null,
    paused_at: null,
    completed_at: null,
    failed_at: null,
    cancelled_at: null,
    last_heartbeat_at: null,
    run_at: null,
    retries: 0,
};
function jobError(value) {
    if (!isRecord(value))
        return null;
    return {
        code: typeof value["code"] === "string" ? value["code"] : "",
        message: typeof value["message"] === "string" ? value["message"] : "",
        retryable: value["retryable"] === true,
    };
}
function leaves(state) {
    // pause_requested is cleared whenever the job leaves running.
    return { state, pause_requested: false };
}
/** The job after `event`, which must be the next one of its stream. */
export function applyEvent(job, event) {
    const data = isRecord(event.data) ? event.data : {};
    const at = event.at;
    const next = { ...job, seq: event.seq, epoch: event.epoch, updated_at: at };
    switch (event.type) {
        case "job:created":
            if (isRecord(data["job"]))
                return { ...data["job"], seq: event.seq, epoch: event.epoch };
            return { ...next, state: "created" };
        case "job:started": {
            const resumed = data["resumed"] === true;
            Object.assign(next, leaves("running"), { started_at: at, last_heartbeat_at: at });
            if (typeof data["attempt"] === "number")
                next.attempt = data["attempt"];
            if (!resumed)
                Object.assign(next, { progress: 0, step: null });
            return next;
        }
        case "job:progress":
            if (typeof data["progress"] === "number")
                next.progress = data["progress"];
            next.step = typeof data["step"] === "string" ? data["step"] : null;
            return next;
        case "job:checkpoint":
            Object.assign(next, { has_checkpoint: true, checkpoint_at: at, last_heartbeat_at: at });
            if (typeof data["progress"] === "number")
                next.progress = data["progress"];
            return next;
        case "job:pause_requested":
            return { ...next, pause_requested: true };
        case "job:paused":
            return { ...next, ...leaves("paused"), paused_at: at };
        case "job:recovery": {
            // The recovery options of a job the supervisor paused (it follows job:paused).
            next.state = "paused";
            if (typeof data["recovery_attempts"] === "number")
                next.recovery_attempts = data["recovery_attempts"];
            const checkpoint = data["checkpoint"];
            if (isRecord(checkpoint) && typeof checkpoint["present"] === "boolean")
                next.has_checkpoint = checkpoint["present"];
            return next;
        }
        case "job:resumed":
            Object.assign(next, leaves("created"), { paused_at: null });
            if (typeof data["has_checkpoint"] === "boolean")
                next.has_checkpoint = data["has_checkpoint"];
            return next;
        case "job:completed":
            return { ...next, ...leaves("completed"), result: data["result"] ?? null, progress: 100, error: null, completed_at: at };
        case "job:failed":
            return { ...next, ...leaves("failed"), error: jobError(data["error"]), failed_at: at };
        case "job:cancelled":
            return { ...next, ...leaves("cancelled"), cancelled_at: at };
        case "job:restarted":
            return { ...next, ...leaves("created"), ...RESTART_CLEARS };
        case "job:retrying": {
            Object.assign(next, leaves("created"), { error: jobError(data["error"]) });
            if (typeof data["run_at"] === "string" || data["run_at"] === null)
                next.run_at = data["run_at"];
            next.retries = (job.retries ?? 0) + 1;
            if (typeof data["attempt"] === "number")
                next.attempt = data["attempt"];
            return next;
        }
        default:
            return next; // a newer server's event type: seq and epoch move on, the rest stays
    }
}
