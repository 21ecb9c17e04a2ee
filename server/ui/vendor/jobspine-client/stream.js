/**
 * The replay algorithm of docs/protocol.md for one job, pure: the latest known job (its
 * `seq` is the cursor, its `epoch` the stream), live events applied in seq order exactly
 * once, duplicates dropped, gaps and other epochs held until an answer (`job:subscribe`
 * ack or `job:sync` slot) fills them or replaces the state with the snapshot.
 */
import { applyEvent } from "./fold.js";
export class JobStream {
    jobId;
    current;
    /** Live events not applicable yet (no state, a gap, another epoch), by seq. */
    held = new Map();
    constructor(jobId, job = null) {
        this.jobId = jobId;
        this.current = job;
    }
    get job() {
        return this.current;
    }
    /** `{after_seq, epoch}` once something was seen, else null. */
    cursor() {
        const job = this.current;
        return job === null ? null : { after_seq: job.seq, epoch: job.epoch };
    }
    /** One live event: applied (with held ones it made contiguous), dropped as a
     * duplicate, or held (`resync` true). */
    live(event) {
        const job = this.current;
        const sameStream = job !== null && event.epoch === job.epoch;
        if (sameStream && (event.seq <= job.seq || this.held.has(event.seq))) {
            return { reset: false, steps: [], resync: this.held.size > 0 };
        }
        if (sameStream && event.seq === job.seq + 1) {
            const steps = [{ event, job: applyEvent(job, event) }];
            this.current = steps[0].job;
            this.drain(steps);
            return { reset: false, steps, resync: this.held.size > 0 };
        }
        this.held.set(event.seq, event);
        return { reset: false, steps: [], resync: true };
    }
    /** A snapshot read on its own (a listing, `GET /api/jobs/{id}`): adopted when it is of
     * another epoch or further on; then held events continue from it. */
    adopt(snapshot) {
        const job = this.current;
        const newer = job === null || snapshot.epoch !== job.epoch || snapshot.seq > job.seq;
        if (!newer)
            return { reset: false, steps: [], resync: this.held.size > 0 };
        this.current = snapshot;
        const steps = [];
        this.drain(steps);
        return { reset: job !== null, steps, resync: this.held.size > 0 };
    }
    /** A replay answer (`recovered`, `events`, snapshot `job`). */
    answer(answer) {
        const before = this.current;
        const snapshot = answer.job;
        if (before === null || !answer.recovered || snapshot.epoch !== before.epoch) {
            this.current = snapshot;
            const steps = [];
            this.drain(steps);
            return { reset: before !== null, steps, resync: this.held.size > 0 };
        }
        let job = before;
        const steps = [];
        for (const event of answer.events) {
            if (event.epoch !== job.epoch || event.seq <= job.seq)
                continue;
            if (event.seq !== job.seq + 1) {
                // A replay with a hole cannot happen by contract; the snapshot is safe.
                this.current = snapshot;
                this.drain([]);
                return { reset: true, steps: [], resync: this.held.size > 0 };
            }
            job = applyEvent(job, event);
            steps.push({ event, job });
        }
        // The snapshot is current for what events do not carry (a held progress report,
        // heartbeats): adopt it when it stands where the events left the job.
        if (snapshot.seq === job.seq && snapshot.epoch === job.epoch)
            job = snapshot;
        this.current = job;
        this.drain(steps);
        return { reset: false, steps, resync: this.held.size > 0 };
    }
    /** Apply held events that now continue the cursor; drop those already seen or of
     * another epoch than the current state. */
    drain(steps) {
        let job = this.current;
        if (job === null)
            return;
        for (const [seq, event] of [...this.held].sort((a, b) => a[0] - b[0])) {
            if (event.epoch !== job.epoch || seq <= job.seq) {
                this.held.delete(seq);
            }
            else if (seq === job.seq + 1) {
                job = applyEvent(job, event);
                this.held.delete(seq);
                steps.push({ event, job });
            }
        }
        this.current = job;
    }
}
