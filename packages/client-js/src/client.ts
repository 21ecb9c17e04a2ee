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

import { io, type Socket } from "socket.io-client";

import { Backoff } from "./backoff.js";
import { Listenable } from "./emitter.js";
import { CLIENT_CODES, JobspineError, isRecord } from "./errors.js";
import type { WatchHost } from "./host.js";
import { RestApi } from "./rest.js";
import { type StorageLike, WatchStore } from "./storage.js";
import { type Cursor, syncAll } from "./sync.js";
import { TokenSource, type TokenOption, refreshDelayMs, tokenExp } from "./token.js";
import { UserWatch } from "./user_watch.js";
import { JobWatch } from "./watch.js";
import type { CreateJob, Job, JobEvent, JobPage, ListQuery, ReplayAnswer, SyncSlot } from "./wire.js";

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
export const CALL_TIMEOUT_MS = 15_000;
/** A failed `auth:refresh` is tried again after this long (while the session lasts). */
const REFRESH_RETRY_MS = 2_000;

export class JobspineClient extends Listenable<ClientEvents> {
  private readonly url: string;
  private readonly tokens: TokenSource;
  private readonly rest: RestApi;
  private readonly store: WatchStore;
  private readonly socket: Socket;
  private readonly host: WatchHost;
  private readonly backoff = new Backoff();
  private readonly watches = new Set<JobWatch>();
  private readonly userWatches = new Set<UserWatch>();
  private currentStatus: Status | null = null;
  private waiters: { resolve: () => void; reject: (error: JobspineError) => void }[] = [];
  private started = false;
  private closing = false;
  private everLive = false;
  /** Bumped on each connect: a resync of an older connection gives up. */
  private generation = 0;
  private sessionExpired = false;
  private tokenFailed = false;
  /** The token the socket's session was last opened or refreshed with. */
  private sessionToken: string | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: ClientOptions) {
    super();
    if (typeof options.url !== "string" || options.url === "") throw new TypeError("url is required");
    if (typeof options.token !== "string" && typeof options.token !== "function") {
      throw new TypeError("token must be a string or a function returning a promise of one");
    }
    this.url = options.url.replace(/\/+$/, "");
    this.tokens = new TokenSource(options.token);
    this.rest = new RestApi(this.url, this.tokens);
    this.store = new WatchStore(options.storage, `jobspine:${this.url}`);
    const connected = (): boolean => this.socket.connected;
    this.host = {
      get connected(): boolean {
        return connected();
      },
      store: this.store,
      subscribe: (jobId, cursor) => this.subscribe(jobId, cursor),
      unsubscribe: (jobId) => this.unsubscribe(jobId),
      sync: (cursors) => this.sync(cursors),
      list: (query) => this.rest.list(query),
      forget: (watch) => {
        this.watches.delete(watch as JobWatch);
        this.userWatches.delete(watch as UserWatch);
      },
    };
    this.socket = io(this.url, {
      autoConnect: false,
      reconnection: false, // our own backoff decides (also after refusals and server disconnects)
      forceNew: true,
      auth: (send) => {
        this.tokens.fresh().then(
          (token) => {
            this.tokenFailed = false;
            this.sessionToken = token;
            send({ token });
          },
          () => {
            this.tokenFailed = true;
            send({});
          },
        );
      },
    });
    this.socket.on("connect", () => void this.onConnected());
    this.socket.on("connect_error", (error: Error & { data?: unknown }) => this.onRefused(error));
    this.socket.on("disconnect", (reason: string) => this.onDisconnected(reason));
    this.socket.on("session:expired", () => {
      this.sessionExpired = true;
    });
    this.socket.onAny((name: string, payload: unknown) => this.route(name, payload));
  }

  /** The connection's status, or null before `connect()`. */
  get status(): Status | null {
    return this.currentStatus;
  }

  /** Resolves once live; rejects when the server refuses the token (status `expired`).
   * A network that is down keeps it waiting while the client tries again. */
  connect(): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    if (this.currentStatus === "live") return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.started || this.currentStatus === "expired") {
      this.started = true;
      this.setStatus(this.everLive ? "reconnecting" : "connecting");
      this.socket.connect();
    }
    return done;
  }

  watch(jobId: string): JobWatch {
    if (typeof jobId !== "string" || jobId === "") throw new TypeError("watch needs a job id");
    if (this.closing) throw closedError();
    const watch = new JobWatch(jobId, this.host);
    this.watches.add(watch);
    void watch.loaded.then(() => {
      if (this.socket.connected) void watch.join();
    });
    return watch;
  }

  watchUser(): UserWatch {
    if (this.closing) throw closedError();
    const watch = new UserWatch(this.host);
    this.userWatches.add(watch);
    if (this.socket.connected) void watch.reload();
    return watch;
  }

  create(fields: CreateJob): Promise<Job> {
    return this.rest.create(fields);
  }

  pause(jobId: string): Promise<Job> {
    return this.rest.act(jobId, "pause");
  }

  resume(jobId: string): Promise<Job> {
    return this.rest.act(jobId, "resume");
  }

  cancel(jobId: string): Promise<Job> {
    return this.rest.act(jobId, "cancel");
  }

  /** Restart a failed or cancelled job, with a new input when given. */
  restart(jobId: string, input?: Record<string, unknown>): Promise<Job> {
    return this.rest.act(jobId, "restart", input === undefined ? {} : { input });
  }

  get(jobId: string): Promise<Job> {
    return this.rest.get(jobId);
  }

  list(query: ListQuery = {}): Promise<JobPage> {
    return this.rest.list(query);
  }

  /** Disconnect and stop every watch (stored cursors stay, for the next process). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.clearTimers();
    for (const watch of [...this.watches, ...this.userWatches]) watch.detach(closedError());
    this.rejectWaiters(closedError());
    this.socket.disconnect();
    this.emitter.clear();
  }

  // -- what watches use -----------------------------------------------------------------

  private async call(event: string, payload: object): Promise<Record<string, unknown>> {
    if (!this.socket.connected) throw new JobspineError(CLIENT_CODES.unavailable, "not connected");
    let ack: unknown;
    try {
      ack = await this.socket.timeout(CALL_TIMEOUT_MS).emitWithAck(event, payload);
    } catch (error) {
      throw new JobspineError(CLIENT_CODES.timeout, `${event}: ${String(error)}`);
    }
    if (!isRecord(ack)) throw new JobspineError(CLIENT_CODES.unavailable, `${event}: unreadable ack`);
    if (ack["ok"] !== true) throw JobspineError.fromEnvelope(ack["error"]);
    return ack;
  }

  private async subscribe(jobId: string, cursor: Cursor | null): Promise<ReplayAnswer> {
    const payload = cursor === null ? { job_id: jobId } : { job_id: jobId, ...cursor };
    return (await this.call("job:subscribe", payload)) as unknown as ReplayAnswer;
  }

  private unsubscribe(jobId: string): void {
    const stillWatched = [...this.watches].some((watch) => watch.jobId === jobId);
    if (!stillWatched && this.socket.connected) this.call("job:unsubscribe", { job_id: jobId }).catch(() => undefined);
  }

  private sync(cursors: Map<string, Cursor | null>): Promise<Map<string, SyncSlot>> {
    return syncAll((payload) => this.call("job:sync", payload), cursors);
  }

  // -- connection life ----------------------------------------------------------------

  private setStatus(status: Status): void {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    this.emitter.emit("status", status);
  }

  private async onConnected(): Promise<void> {
    const generation = ++this.generation;
    this.sessionExpired = false;
    try {
      await this.resync();
    } catch {
      if (generation === this.generation && !this.closing) {
        this.socket.disconnect(); // a fresh connection syncs again
        this.scheduleReconnect();
      }
      return;
    }
    if (generation !== this.generation || this.closing || !this.socket.connected) return;
    this.backoff.reset();
    this.everLive = true;
    this.setStatus("live");
    this.resolveWaiters();
    this.scheduleRefresh();
  }

  /** ONE `job:sync` with every watched cursor, then rejoin each job's room (the
   * subscribe answers whatever came between), then reload the user watches. */
  private async resync(): Promise<void> {
    const watches = [...this.watches];
    await Promise.all(watches.map((watch) => watch.loaded));
    const cursors = new Map<string, Cursor | null>();
    for (const watch of watches) {
      const cursor = watch.cursor();
      if (cursor !== null) cursors.set(watch.jobId, cursor);
    }
    for (const watch of watches) watch.hold();
    try {
      if (cursors.size > 0) {
        const slots = await this.sync(cursors);
        for (const watch of watches) {
          const slot = slots.get(watch.jobId);
          if (slot !== undefined) watch.slot(slot);
        }
      }
      await Promise.all(watches.filter((watch) => !watch.closed).map((watch) => watch.join()));
    } finally {
      for (const watch of watches) watch.release();
    }
    await Promise.all([...this.userWatches].map((watch) => watch.reload()));
  }

  private onRefused(error: Error & { data?: unknown }): void {
    if (this.closing) return;
    const data = error.data;
    const code = isRecord(data) ? data["code"] : undefined;
    if ((code === "unauthorized" || code === "forbidden") && !this.tokenFailed) {
      this.expire(JobspineError.fromEnvelope(data));
      return;
    }
    this.scheduleReconnect();
  }

  private onDisconnected(reason: string): void {
    this.generation += 1;
    this.clearRefresh();
    if (this.closing || reason === "io client disconnect") return;
    if (this.sessionExpired && !this.tokens.refreshable) {
      this.expire(new JobspineError("unauthorized", "the session expired and the token cannot be refreshed"));
      return;
    }
    this.scheduleReconnect();
  }

  private expire(error: JobspineError): void {
    this.clearTimers();
    this.setStatus("expired");
    this.rejectWaiters(error);
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    this.setStatus(this.everLive ? "reconnecting" : "connecting");
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closing && !this.socket.connected) this.socket.connect();
    }, this.backoff.next());
  }

  /** Before the session token's `exp`: a fresh token, sent with `auth:refresh`. */
  private scheduleRefresh(): void {
    this.clearRefresh();
    const token = this.sessionToken;
    if (!this.tokens.refreshable || token === null) return;
    const exp = tokenExp(token);
    if (exp === null) return;
    this.refreshTimer = setTimeout(() => void this.refresh(), refreshDelayMs(exp, Date.now()));
  }

  private async refresh(): Promise<void> {
    this.refreshTimer = null;
    const generation = this.generation;
    try {
      const token = await this.tokens.fresh();
      await this.call("auth:refresh", { token });
      if (generation !== this.generation) return;
      this.sessionToken = token;
      this.scheduleRefresh();
    } catch (error) {
      if (generation !== this.generation || this.closing) return;
      // forbidden / unsupported: leave it to session:expired and a reconnect with a fresh
      // token; anything else (the token function, a timeout) is tried again shortly.
      const final = error instanceof JobspineError && (error.code === "forbidden" || error.code === "bad_request");
      if (!final) this.refreshTimer = setTimeout(() => void this.refresh(), REFRESH_RETRY_MS);
    }
  }

  private route(name: string, payload: unknown): void {
    if (!name.startsWith("job:") || !isRecord(payload) || typeof payload["job_id"] !== "string") return;
    if (typeof payload["seq"] !== "number" || typeof payload["epoch"] !== "string") return;
    const event = payload as unknown as JobEvent;
    for (const watch of [...this.watches]) if (watch.jobId === event.job_id) watch.live(event);
    for (const watch of [...this.userWatches]) watch.live(event);
  }

  private clearRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private clearTimers(): void {
    this.clearRefresh();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private resolveWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private rejectWaiters(error: JobspineError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}

function closedError(): JobspineError {
  return new JobspineError(CLIENT_CODES.closed, "the client was closed");
}
