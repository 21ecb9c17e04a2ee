/**
 * The replay algorithm of docs/protocol.md for one job, pure: the latest known job (its
 * `seq` is the cursor, its `epoch` the stream), live events applied in seq order exactly
 * once, duplicates dropped, gaps and other epochs held until an answer (`job:subscribe`
 * ack or `job:sync` slot) fills them or replaces the state with the snapshot.
 */
import type { Job, JobEvent, ReplayAnswer } from "./wire.js";
/** One applied event and the job after it. */
export interface Step {
    event: JobEvent;
    job: Job;
}
/** What one live event or answer did. */
export interface Outcome {
    /** The state was replaced by a snapshot (`recovered: false`, another epoch) rather than
     * continued; false for the very first state. */
    reset: boolean;
    /** The applied events, in seq order, each with the job after it. */
    steps: Step[];
    /** Held events still do not continue the cursor: ask the server for an answer. */
    resync: boolean;
}
export declare class JobStream {
    readonly jobId: string;
    private current;
    /** Live events not applicable yet (no state, a gap, another epoch), by seq. */
    private readonly held;
    constructor(jobId: string, job?: Job | null);
    get job(): Job | null;
    /** `{after_seq, epoch}` once something was seen, else null. */
    cursor(): {
        after_seq: number;
        epoch: string;
    } | null;
    /** One live event: applied (with held ones it made contiguous), dropped as a
     * duplicate, or held (`resync` true). */
    live(event: JobEvent): Outcome;
    /** A snapshot read on its own (a listing, `GET /api/jobs/{id}`): adopted when it is of
     * another epoch or further on; then held events continue from it. */
    adopt(snapshot: Job): Outcome;
    /** A replay answer (`recovered`, `events`, snapshot `job`). */
    answer(answer: ReplayAnswer): Outcome;
    /** Apply held events that now continue the cursor; drop those already seen or of
     * another epoch than the current state. */
    private drain;
}
