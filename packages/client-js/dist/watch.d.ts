/**
 * `client.watch(jobId)`: one job, live. Every event of the job is delivered once, in seq
 * order (`event`), each followed by the job after it (`change`); a state that had to be
 * replaced by the snapshot fires `reset` (then `change`). The snapshot and cursor are
 * saved to the client's storage after each change, so a new process resumes by replay.
 */
import { JobspineError } from "./errors.js";
import type { WatchHost } from "./host.js";
import { JobStream } from "./stream.js";
import type { AnyEvent, Job, JobEvent, SyncSlot } from "./wire.js";
export interface JobWatchEvents {
    /** Typed by `type`: `if (ev.type === "job:progress") ev.data.progress` is a number. */
    event: AnyEvent;
    change: Job;
    reset: Job;
}
export declare class JobWatch {
    readonly jobId: string;
    private readonly host;
    /** Resolves with the job once the server's first answer is applied; rejects when the
     * job cannot be watched (`not_found`, …) or the watch is closed first. */
    readonly ready: Promise<Job>;
    private stream;
    private readonly emitter;
    private readonly first;
    /** Answers being fetched (a subscribe, a sync): no gap fill of our own meanwhile. */
    private busy;
    private wantsFill;
    private isClosed;
    /** Storage has been read (a cursor from it is used by the first subscribe). */
    readonly loaded: Promise<void>;
    constructor(jobId: string, host: WatchHost);
    /** The latest known job (from storage until the server answers), or null. */
    get job(): Job | null;
    /** The seq of the latest applied event, or null before any state. */
    get lastSeq(): number | null;
    /** The job's event stream, or null before any state. */
    get epoch(): string | null;
    get closed(): boolean;
    on<K extends keyof JobWatchEvents>(name: K, listener: (value: JobWatchEvents[K]) => void): () => void;
    /** Stop watching: leaves the job's room and forgets the stored cursor. */
    close(): void;
    /** The client is closing: stop without forgetting the stored cursor. */
    detach(reason: JobspineError): void;
    /** The cursor for a resync after a reconnect (null: none yet). */
    cursor(): ReturnType<JobStream["cursor"]>;
    /** Around a resync: hold gap fills of our own until it is done. */
    hold(): void;
    release(): void;
    /** A live event of this job. */
    live(event: JobEvent): void;
    /** A `job:sync` slot for this job (after a reconnect, or a gap fill). */
    slot(slot: SyncSlot): void;
    /** `job:subscribe` with the current cursor: joins the room, applies the answer. */
    join(): Promise<void>;
    private restore;
    private answer;
    /** A refusal of our job (`not_found`: it was deleted or is not ours) ends the watch;
     * connection troubles do not (the next reconnect asks again). */
    private refused;
    private publish;
    private lastPublished;
    /** Ask for what is missing: one `job:sync` for this job's cursor. */
    private fill;
}
