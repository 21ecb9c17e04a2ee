/**
 * `client.watchUser()`: every job of the token's user, live, as `jobs` (id → job).
 * It starts from a listing (`GET /api/jobs`, every page) and follows the user's room,
 * which the socket joins on connect; each job's events go through its own
 * {@link JobStream} (seq order, duplicates dropped, gaps filled by `job:sync`). After a
 * reconnect the listing is read again, so jobs created meanwhile appear.
 */

import { JobspineError, isRecord } from "./errors.js";
import { JobStream, type Outcome } from "./stream.js";
import { slotAnswer } from "./sync.js";
import { Watch } from "./watching.js";
import type { Job, JobEvent } from "./wire.js";

export interface UserWatchEvents {
  change: Job;
}

/** Jobs per listing page (the server's largest). */
const PAGE_LIMIT = 200;

/** `ready` resolves after the first listing (every page) is applied. */
export class UserWatch extends Watch<UserWatchEvents, void> {
  /** Every known job of the user, by id, kept current. */
  readonly jobs = new Map<string, Job>();
  private readonly streams = new Map<string, JobStream>();
  private readonly filling = new Set<string>();

  close(): void {
    this.detach(new JobspineError("closed", "the watch was closed"));
  }

  // -- used by the client -------------------------------------------------------------

  /** A live event of one of the user's jobs. */
  live(event: JobEvent): void {
    if (this.isClosed) return;
    let stream = this.streams.get(event.job_id);
    if (stream === undefined) {
      const created = event.type === "job:created" && event.seq === 1 && isRecord(event.data["job"]);
      stream = new JobStream(event.job_id, created ? this.createdJob(event) : null);
      this.streams.set(event.job_id, stream);
      if (created) {
        this.publish(stream, { reset: false, steps: [], resync: false });
        return;
      }
    }
    this.publish(stream, stream.live(event));
  }

  /** Read every page of the listing and adopt each snapshot that is newer than ours. */
  async reload(): Promise<void> {
    if (this.isClosed) return;
    try {
      let cursor: string | null = null;
      do {
        const page = await this.host.list(cursor === null ? { limit: PAGE_LIMIT } : { limit: PAGE_LIMIT, cursor });
        for (const job of page.items) {
          let stream = this.streams.get(job.id);
          if (stream === undefined) {
            stream = new JobStream(job.id);
            this.streams.set(job.id, stream);
          }
          this.publish(stream, stream.adopt(job));
        }
        cursor = page.next_cursor;
      } while (cursor !== null && !this.isClosed);
      this.first.resolve();
    } catch (error) {
      if (error instanceof JobspineError && error.code !== "unavailable") this.first.reject(error);
    }
  }

  // -- internals ----------------------------------------------------------------------

  private createdJob(event: JobEvent): Job {
    return { ...(event.data["job"] as Job), seq: event.seq, epoch: event.epoch };
  }

  private publish(stream: JobStream, outcome: Outcome): void {
    const job = stream.job;
    if (job !== null && this.jobs.get(stream.jobId) !== job) {
      this.jobs.set(stream.jobId, job);
      this.emitter.emit("change", job);
    }
    if (outcome.resync) void this.fill(stream);
  }

  /** One `job:sync` for a job whose stream has a gap (or that we have not seen yet). */
  private async fill(stream: JobStream): Promise<void> {
    if (this.isClosed || !this.host.connected || this.filling.has(stream.jobId)) return;
    this.filling.add(stream.jobId);
    let again = false;
    try {
      const slots = await this.host.sync(new Map([[stream.jobId, stream.cursor()]]));
      const slot = slots.get(stream.jobId);
      const answer = slot === undefined ? null : slotAnswer(slot);
      if (answer instanceof JobspineError) {
        if (answer.code === "not_found") this.forgetJob(stream.jobId);
      } else if (answer !== null) {
        const outcome = stream.answer(answer);
        again = outcome.resync;
        this.publish(stream, { ...outcome, resync: false });
      }
    } catch {
      // the connection went away: the reconnect's listing catches up
    } finally {
      this.filling.delete(stream.jobId);
    }
    if (again) void this.fill(stream);
  }

  private forgetJob(jobId: string): void {
    this.streams.delete(jobId);
    this.jobs.delete(jobId);
  }
}
