/**
 * JobspineClient: one Socket.IO connection on `/` for live events, REST for calls.
 *
 * Connection life: `connect()` → status `connecting` → on each (re)connect ONE `job:sync`
 * with every watched cursor, then `job:subscribe` per watch (rejoining the rooms), then
 * the user watches' listings → `live`. A lost connection → `reconnecting`, tried again
 * after a backoff with jitter. The token (a string, or a function called on each connect)
 * is refreshed before its `exp` with `auth:refresh`; a session that ends without a way to
 * get a new token (a fixed string, or a refused fresh one) → `expired`.
 */
import { type StorageLike } from "./storage.js";
import { type TokenOption } from "./token.js";
import { UserWatch } from "./user_watch.js";
import { JobWatch } from "./watch.js";
import type { CreateJob, Job, JobPage, ListQuery } from "./wire.js";
export type Status = "connecting" | "live" | "reconnecting" | "expired";
export interface ClientOptions {
    /** The server's origin, e.g. `http://127.0.0.1:8080`. */
    url: string;
    /** A JWT, or a function that resolves to a fresh one (called on each connect and
     * before the current token's `exp`). */
    token: TokenOption;
    /** Where cursors and snapshots of watches are kept (localStorage, or any
     * getItem/setItem store, which may answer with promises). */
    storage?: StorageLike;
}
interface ClientEvents {
    status: Status;
}
/** Longest wait for one socket call's ack. */
export declare const CALL_TIMEOUT_MS = 15000;
export declare class JobspineClient {
    private readonly url;
    private readonly tokens;
    private readonly rest;
    private readonly store;
    private readonly socket;
    private readonly host;
    private readonly emitter;
    private readonly backoff;
    private readonly watches;
    private readonly userWatches;
    private currentStatus;
    private waiters;
    private started;
    private closing;
    private everLive;
    /** Bumped on each connect: a resync of an older connection gives up. */
    private generation;
    private sessionExpired;
    private tokenFailed;
    /** The token the socket's session was last opened or refreshed with. */
    private sessionToken;
    private reconnectTimer;
    private refreshTimer;
    constructor(options: ClientOptions);
    /** The connection's status, or null before `connect()`. */
    get status(): Status | null;
    on<K extends keyof ClientEvents>(name: K, listener: (value: ClientEvents[K]) => void): () => void;
    /** Resolves once live; rejects when the server refuses the token (status `expired`).
     * A network that is down keeps it waiting while the client tries again. */
    connect(): Promise<void>;
    watch(jobId: string): JobWatch;
    watchUser(): UserWatch;
    create(fields: CreateJob): Promise<Job>;
    pause(jobId: string): Promise<Job>;
    resume(jobId: string): Promise<Job>;
    cancel(jobId: string): Promise<Job>;
    /** Restart a failed or cancelled job, with a new input when given. */
    restart(jobId: string, input?: Record<string, unknown>): Promise<Job>;
    get(jobId: string): Promise<Job>;
    list(query?: ListQuery): Promise<JobPage>;
    /** Disconnect and stop every watch (stored cursors stay, for the next process). */
    close(): Promise<void>;
    private call;
    private subscribe;
    private unsubscribe;
    private sync;
    private setStatus;
    private onConnected;
    /** ONE `job:sync` with every watched cursor, then rejoin each job's room (the
     * subscribe answers whatever came between), then reload the user watches. */
    private resync;
    private onRefused;
    private onDisconnected;
    private expire;
    private scheduleReconnect;
    /** Before the session token's `exp`: a fresh token, sent with `auth:refresh`. */
    private scheduleRefresh;
    private refresh;
    private route;
    private clearRefresh;
    private clearTimers;
    private resolveWaiters;
    private rejectWaiters;
}
export {};
