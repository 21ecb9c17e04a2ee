/**
 * `client.watch(jobId)`: one job, live. Every event of the job is delivered once, in seq
 * order (`event`), each followed by the job after it (`change`); a state that had to be
 * replaced by the snapshot fires `reset` (then `change`). The snapshot and cursor are
 * saved to the client's storage after each change, so a new process resumes by replay.
 */

import { JobspineError } from "./errors.js";
import type { WatchHost } from "./host.js";
import { JobStream, type Outcome } from "./stream.js";
import { slotAnswer } from "./sync.js";
import { Watch } from "./watching.js";
import type { AnyEvent, Job, JobEvent, ReplayAnswer, SyncSlot } from "./wire.js";

export interface JobWatchEvents {
  /** Typed by `type`: `if (ev.type === "job:progress") ev.data.progress` is a number. */
  event: AnyEvent;
  change: Job;
  reset: Job;
}

export class JobWatch extends Watch<JobWatchEvents, Job> {
  private stream: JobStream;
  /** Answers being fetched (a subscribe, a sync): no gap fill of our own meanwhile. */
  private busy = 0;
  private wantsFill = false;
  /** Storage has been read (a cursor from it is used by the first subscribe). */
  readonly loaded: Promise<void>;

  constructor(
    readonly jobId: string,
    host: WatchHost,
  ) {
    super(host);
    this.stream = new JobStream(jobId);
    this.loaded = this.restore();
  }

  /** The latest known job (from storage until the server answers), or null. */
  get job(): Job | null {
    return this.stream.job;
  }

  /** The seq of the latest applied event, or null before any state. */
  get lastSeq(): number | null {
    return this.stream.job?.seq ?? null;
  }

  /** The job's event stream, or null before any state. */
  get epoch(): string | null {
    return this.stream.job?.epoch ?? null;
  }

  /** Stop watching: leaves the job's room and forgets the stored cursor. */
  close(): void {
    if (this.isClosed) return;
    this.host.store.remove(this.jobId);
    this.detach(new JobspineError("closed", "the watch was closed"));
    this.host.unsubscribe(this.jobId);
  }

  // -- used by the client -------------------------------------------------------------

  /** The cursor for a resync after a reconnect (null: none yet). */
  cursor(): ReturnType<JobStream["cursor"]> {
    return this.stream.cursor();
  }

  /** Around a resync: hold gap fills of our own until it is done. */
  hold(): void {
    this.busy += 1;
  }

  release(): void {
    this.busy -= 1;
    if (this.busy === 0 && this.wantsFill) void this.fill();
  }

  /** A live event of this job. */
  live(event: JobEvent): void {
    if (this.isClosed) return;
    this.publish(this.stream.live(event));
  }

  /** A `job:sync` slot for this job (after a reconnect, or a gap fill). */
  slot(slot: SyncSlot): void {
    const answer = slotAnswer(slot);
    if (answer instanceof JobspineError) this.refused(answer);
    else this.answer(answer);
  }

  /** `job:subscribe` with the current cursor: joins the room, applies the answer. */
  async join(): Promise<void> {
    if (this.isClosed) return;
    this.hold();
    try {
      this.answer(await this.host.subscribe(this.jobId, this.stream.cursor()));
    } catch (error) {
      if (error instanceof JobspineError) this.refused(error);
    } finally {
      this.release();
    }
  }

  // -- internals ----------------------------------------------------------------------

  private async restore(): Promise<void> {
    const stored = await this.host.store.load(this.jobId);
    if (stored !== null && this.stream.job === null && !this.isClosed) {
      this.stream = new JobStream(this.jobId, stored);
      this.emitter.emit("change", stored);
    }
  }

  private answer(answer: ReplayAnswer): void {
    if (this.isClosed) return;
    this.publish(this.stream.answer(answer));
    const job = this.stream.job;
    if (job !== null) this.first.resolve(job);
  }

  /** A refusal of our job (`not_found`: it was deleted or is not ours) ends the watch;
   * connection troubles do not (the next reconnect asks again). */
  private refused(error: JobspineError): void {
    if (error.code === "not_found" || error.code === "forbidden" || error.code === "validation_error") {
      this.host.store.remove(this.jobId);
      this.detach(error);
    }
  }

  private publish(outcome: Outcome): void {
    const before = this.lastPublished;
    const job = this.stream.job;
    if (outcome.reset && job !== null) this.emitter.emit("reset", job);
    for (const step of outcome.steps) {
      this.emitter.emit("event", step.event as AnyEvent);
      this.emitter.emit("change", step.job);
    }
    if (job !== null && job !== before && (outcome.steps.length === 0 || job !== outcome.steps.at(-1)?.job)) {
      this.emitter.emit("change", job);
    }
    if (job !== null && job !== before) this.host.store.save(job);
    this.lastPublished = job;
    this.wantsFill = outcome.resync;
    if (outcome.resync && this.busy === 0) void this.fill();
  }

  private lastPublished: Job | null = null;

  /** Ask for what is missing: one `job:sync` for this job's cursor. */
  private async fill(): Promise<void> {
    if (this.isClosed || !this.host.connected) return;
    this.wantsFill = false;
    this.hold();
    try {
      const slots = await this.host.sync(new Map([[this.jobId, this.stream.cursor()]]));
      const slot = slots.get(this.jobId);
      if (slot !== undefined) this.slot(slot);
    } catch (error) {
      if (error instanceof JobspineError) this.refused(error);
    } finally {
      this.release();
    }
  }
}
