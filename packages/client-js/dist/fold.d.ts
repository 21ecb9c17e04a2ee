/**
 * How one event changes a job: the JS fold, proven equal to the server's snapshot by the
 * conformance fixtures (test/unit/conformance.test.mjs). Pure: returns a new job.
 *
 * An event carries only part of what the server changed (a resumed claim's progress comes
 * from the checkpoint, which no event carries); the snapshot is the truth for the rest,
 * and the client adopts it whenever an answer brings one.
 */
import type { Job, JobEvent } from "./wire.js";
/** The job after `event`, which must be the next one of its stream. */
export declare function applyEvent(job: Job, event: JobEvent): Job;
