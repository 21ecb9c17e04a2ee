/**
 * `client.watchUser()`: every job of the token's user, live, as `jobs` (id → job).
 * It starts from a listing (`GET /api/jobs`, every page) and follows the user's room,
 * which the socket joins on connect; each job's events go through its own
 * {@link JobStream} (seq order, duplicates dropped, gaps filled by `job:sync`). After a
 * reconnect the listing is read again, so jobs created meanwhile appear.
 */
import { JobspineError } from "./errors.js";
import type { WatchHost } from "./host.js";
import type { Job, JobEvent } from "./wire.js";
export interface UserWatchEvents {
    change: Job;
}
export declare class UserWatch {
    private readonly host;
    /** Every known job of the user, by id, kept current. */
    readonly jobs: Map<string, Job>;
    /** Resolves after the first listing is applied. */
    readonly ready: Promise<void>;
    private readonly streams;
    private readonly emitter;
    private readonly filling;
    private readonly first;
    private isClosed;
    constructor(host: WatchHost);
    get closed(): boolean;
    on<K extends keyof UserWatchEvents>(name: K, listener: (value: UserWatchEvents[K]) => void): () => void;
    close(): void;
    detach(reason: JobspineError): void;
    /** A live event of one of the user's jobs. */
    live(event: JobEvent): void;
    /** Read every page of the listing and adopt each snapshot that is newer than ours. */
    reload(): Promise<void>;
    private createdJob;
    private publish;
    /** One `job:sync` for a job whose stream has a gap (or that we have not seen yet). */
    private fill;
    private forgetJob;
}
