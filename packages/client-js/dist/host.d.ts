/** What a watch needs from its client: the socket calls and the storage. */
import type { WatchStore } from "./storage.js";
import type { Cursor } from "./sync.js";
import type { JobPage, ListQuery, ReplayAnswer, SyncSlot } from "./wire.js";
export interface WatchHost {
    /** The socket is connected (its answers may be asked for). */
    readonly connected: boolean;
    readonly store: WatchStore;
    /** `job:subscribe` with the cursor: joins the job's room, answers the replay. */
    subscribe(jobId: string, cursor: Cursor | null): Promise<ReplayAnswer>;
    /** `job:unsubscribe`, best effort. */
    unsubscribe(jobId: string): void;
    /** `job:sync` for these cursors (in as few calls as the server allows). */
    sync(cursors: Map<string, Cursor | null>): Promise<Map<string, SyncSlot>>;
    /** One page of `GET /api/jobs`. */
    list(query: ListQuery): Promise<JobPage>;
    /** The watch is closed: stop routing events to it. */
    forget(watch: object): void;
}
