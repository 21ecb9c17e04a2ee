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
import { io } from "socket.io-client";
import { Backoff } from "./backoff.js";
import { Listenable } from "./emitter.js";
import { CLIENT_CODES, JobspineError, isRecord } from "./errors.js";
import { RestApi } from "./rest.js";
import { WatchStore } from "./storage.js";
import { syncAll } from "./sync.js";
import { TokenSource, refreshDelayMs, tokenExp } from "./token.js";
import { UserWatch } from "./user_watch.js";
import { JobWatch } from "./watch.js";
/** Longest wait for one socket call's ack. */
export const CALL_TIMEOUT_MS = 15_000;
/** A failed `auth:refresh` is tried again after this long (while the session lasts). */
const REFRESH_RETRY_MS = 2_000;
export class JobspineClient extends Listenable {
    url;
    tokens;
    rest;
    store;
    socket;
    host;
    backoff = new Backoff();
    watches = new Set();
    userWatches = new Set();
    currentStatus = null;
    waiters = [];
    started = false;
    closing = false;
    everLive = false;
    /** Bumped on each connect: a resync of an older connection gives up. */
    generation = 0;
    sessionExpired = false;
    tokenFailed = false;
    /** The token the socket's session was last opened or refreshed with. */
    sessionToken = null;
    reconnectTimer = null;
    refreshTimer = null;
    constructor(options) {
        super();
        if (typeof options.url !== "string" || options.url === "")
            throw new TypeError("url is required");
        if (typeof options.token !== "string" && typeof options.token !== "function") {
            throw new TypeError("token must be a string or a function returning a promise of one");
        }
        this.url = options.url.replace(/\/+$/, "");
        this.tokens = new TokenSource(options.token);
        this.rest = new RestApi(this.url, this.tokens);
        this.store = new WatchStore(options.storage, `jobspine:${this.url}`);
        const connected = () => this.socket.connected;
        this.host = {
            get connected() {
                return connected();
            },
            store: this.store,
            subscribe: (jobId, cursor) => this.subscribe(jobId, cursor),
            unsubscribe: (jobId) => this.unsubscribe(jobId),
            sync: (cursors) => this.sync(cursors),
            list: (query) => this.rest.list(query),
            forget: (watch) => {
                this.watches.delete(watch);
                this.userWatches.delete(watch);
            },
        };
        this.socket = io(this.url, {
            autoConnect: false,
            reconnection: false, // our own backoff decides (also after refusals and server disconnects)
            forceNew: true,
            auth: (send) => {
                this.tokens.fresh().then((token) => {
                    this.tokenFailed = false;
                    this.sessionToken = token;
                    send({ token });
                }, () => {
                    this.tokenFailed = true;
                    send({});
                });
            },
        });
        this.socket.on("connect", () => void this.onConnected());
        this.socket.on("connect_error", (error) => this.onRefused(error));
        this.socket.on("disconnect", (reason) => this.onDisconnected(reason));
        this.socket.on("session:expired", () => {
            this.sessionExpired = true;
        });
        this.socket.onAny((name, payload) => this.route(name, payload));
    }
    /** The connection's status, or null before `connect()`. */
    get status() {
        return this.currentStatus;
    }
    /** Resolves once live; rejects when the server refuses the token (status `expired`).
     * A network that is down keeps it waiting while the client tries again. */
    connect() {
        if (this.closing)
            return Promise.reject(closedError());
        if (this.currentStatus === "live")
            return Promise.resolve();
        const done = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
        if (!this.started || this.currentStatus === "expired") {
            this.started = true;
            this.setStatus(this.everLive ? "reconnecting" : "connecting");
            this.socket.connect();
        }
        return done;
    }
    watch(jobId) {
        if (typeof jobId !== "string" || jobId === "")
            throw new TypeError("watch needs a job id");
        if (this.closing)
            throw closedError();
        const watch = new JobWatch(jobId, this.host);
        this.watches.add(watch);
        void watch.loaded.then(() => {
            if (this.socket.connected)
                void watch.join();
        });
        return watch;
    }
    watchUser() {
        if (this.closing)
            throw closedError();
        const watch = new UserWatch(this.host);
        this.userWatches.add(watch);
        if (this.socket.connected)
            void watch.reload();
        return watch;
    }
    create(fields) {
        return this.rest.create(fields);
    }
    pause(jobId) {
        return this.rest.act(jobId, "pause");
    }
    resume(jobId) {
        return this.rest.act(jobId, "resume");
    }
    cancel(jobId) {
        return this.rest.act(jobId, "cancel");
    }
    /** Restart a failed or cancelled job, with a new input when given. */
    restart(jobId, input) {
        return this.rest.act(jobId, "restart", input === undefined ? {} : { input });
    }
    get(jobId) {
        return this.rest.get(jobId);
    }
    list(query = {}) {
        return this.rest.list(query);
    }
    /** Disconnect and stop every watch (stored cursors stay, for the next process). */
    async close() {
        if (this.closing)
            return;
        this.closing = true;
        this.clearTimers();
        for (const watch of [...this.watches, ...this.userWatches])
            watch.detach(closedError());
        this.rejectWaiters(closedError());
        this.socket.disconnect();
        this.emitter.clear();
    }
    // -- what watches use -----------------------------------------------------------------
    async call(event, payload) {
        if (!this.socket.connected)
            throw new JobspineError(CLIENT_CODES.unavailable, "not connected");
        let ack;
        try {
            ack = await this.socket.timeout(CALL_TIMEOUT_MS).emitWithAck(event, payload);
        }
        catch (error) {
            throw new JobspineError(CLIENT_CODES.timeout, `${event}: ${String(error)}`);
        }
        if (!isRecord(ack))
            throw new JobspineError(CLIENT_CODES.unavailable, `${event}: unreadable ack`);
        if (ack["ok"] !== true)
            throw JobspineError.fromEnvelope(ack["error"]);
        return ack;
    }
    async subscribe(jobId, cursor) {
        const payload = cursor === null ? { job_id: jobId } : { job_id: jobId, ...cursor };
        return (await this.call("job:subscribe", payload));
    }
    unsubscribe(jobId) {
        const stillWatched = [...this.watches].some((watch) => watch.jobId === jobId);
        if (!stillWatched && this.socket.connected)
            this.call("job:unsubscribe", { job_id: jobId }).catch(() => undefined);
    }
    sync(cursors) {
        return syncAll((payload) => this.call("job:sync", payload), cursors);
    }
    // -- connection life ----------------------------------------------------------------
    setStatus(status) {
        if (status === this.currentStatus)
            return;
        this.currentStatus = status;
        this.emitter.emit("status", status);
    }
    async onConnected() {
        const generation = ++this.generation;
        this.sessionExpired = false;
        try {
            await this.resync();
        }
        catch {
            if (generation === this.generation && !this.closing) {
                this.socket.disconnect(); // a fresh connection syncs again
                this.scheduleReconnect();
            }
            return;
        }
        if (generation !== this.generation || this.closing || !this.socket.connected)
            return;
        this.backoff.reset();
        this.everLive = true;
        this.setStatus("live");
        this.resolveWaiters();
        this.scheduleRefresh();
    }
    /** ONE `job:sync` with every watched cursor, then rejoin each job's room (the
     * subscribe answers whatever came between), then reload the user watches. */
    async resync() {
        const watches = [...this.watches];
        await Promise.all(watches.map((watch) => watch.loaded));
        const cursors = new Map();
        for (const watch of watches) {
            const cursor = watch.cursor();
            if (cursor !== null)
                cursors.set(watch.jobId, cursor);
        }
        for (const watch of watches)
            watch.hold();
        try {
            if (cursors.size > 0) {
                const slots = await this.sync(cursors);
                for (const watch of watches) {
                    const slot = slots.get(watch.jobId);
                    if (slot !== undefined)
                        watch.slot(slot);
                }
            }
            await Promise.all(watches.filter((watch) => !watch.closed).map((watch) => watch.join()));
        }
        finally {
            for (const watch of watches)
                watch.release();
        }
        await Promise.all([...this.userWatches].map((watch) => watch.reload()));
    }
    onRefused(error) {
        if (this.closing)
            return;
        const data = error.data;
        const code = isRecord(data) ? data["code"] : undefined;
        if ((code === "unauthorized" || code === "forbidden") && !this.tokenFailed) {
            this.expire(JobspineError.fromEnvelope(data));
            return;
        }
        this.scheduleReconnect();
    }
    onDisconnected(reason) {
        this.generation += 1;
        this.clearRefresh();
        if (this.closing || reason === "io client disconnect")
            return;
        if (this.sessionExpired && !this.tokens.refreshable) {
            this.expire(new JobspineError("unauthorized", "the session expired and the token cannot be refreshed"));
            return;
        }
        this.scheduleReconnect();
    }
    expire(error) {
        this.clearTimers();
        this.setStatus("expired");
        this.rejectWaiters(error);
    }
    scheduleReconnect() {
        if (this.closing)
            return;
        this.setStatus(this.everLive ? "reconnecting" : "connecting");
        if (this.reconnectTimer !== null)
            clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => {
            this.reconnectTimer = null;
            if (!this.closing && !this.socket.connected)
                this.socket.connect();
        }, this.backoff.next());
    }
    /** Before the session token's `exp`: a fresh token, sent with `auth:refresh`. */
    scheduleRefresh() {
        this.clearRefresh();
        const token = this.sessionToken;
        if (!this.tokens.refreshable || token === null)
            return;
        const exp = tokenExp(token);
        if (exp === null)
            return;
        this.refreshTimer = setTimeout(() => void this.refresh(), refreshDelayMs(exp, Date.now()));
    }
    async refresh() {
        this.refreshTimer = null;
        const generation = this.generation;
        try {
            const token = await this.tokens.fresh();
            await this.call("auth:refresh", { token });
            if (generation !== this.generation)
                return;
            this.sessionToken = token;
            this.scheduleRefresh();
        }
        catch (error) {
            if (generation !== this.generation || this.closing)
                return;
            // forbidden / unsupported: leave it to session:expired and a reconnect with a fresh
            // token; anything else (the token function, a timeout) is tried again shortly.
            const final = error instanceof JobspineError && (error.code === "forbidden" || error.code === "bad_request");
            if (!final)
                this.refreshTimer = setTimeout(() => void this.refresh(), REFRESH_RETRY_MS);
        }
    }
    route(name, payload) {
        if (!name.startsWith("job:") || !isRecord(payload) || typeof payload["job_id"] !== "string")
            return;
        if (typeof payload["seq"] !== "number" || typeof payload["epoch"] !== "string")
            return;
        const event = payload;
        for (const watch of [...this.watches])
            if (watch.jobId === event.job_id)
                watch.live(event);
        for (const watch of [...this.userWatches])
            watch.live(event);
    }
    clearRefresh() {
        if (this.refreshTimer !== null)
            clearTimeout(this.refreshTimer);
        this.refreshTimer = null;
    }
    clearTimers() {
        this.clearRefresh();
        if (this.reconnectTimer !== null)
            clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
    }
    resolveWaiters() {
        const waiters = this.waiters;
        this.waiters = [];
        for (const waiter of waiters)
            waiter.resolve();
    }
    rejectWaiters(error) {
        const waiters = this.waiters;
        this.waiters = [];
        for (const waiter of waiters)
            waiter.reject(error);
    }
}
function closedError() {
    return new JobspineError(CLIENT_CODES.closed, "the client was closed");
}
