/**
 * Reconnect delays: exponential from {@link BACKOFF.baseMs} to {@link BACKOFF.maxMs},
 * each with ±50 % jitter so that many clients cut off at once do not come back at once.
 */
export const BACKOFF = { baseMs: 250, factor: 2, maxMs: 10_000, jitter: 0.5 };
export class Backoff {
    random;
    policy;
    attempts = 0;
    constructor(random = Math.random, policy = BACKOFF) {
        this.random = random;
        this.policy = policy;
    }
    /** The delay before the next try (and counts it). */
    next() {
        const { baseMs, factor, maxMs, jitter } = this.policy;
        const plain = Math.min(maxMs, baseMs * factor ** this.attempts);
        this.attempts += 1;
        const spread = plain * jitter * (2 * this.random() - 1);
        return Math.max(0, Math.round(plain + spread));
    }
    /** After a success: the next delay starts from the base again. */
    reset() {
        this.attempts = 0;
    }
}
