/**
 * Reconnect delays: exponential from {@link BACKOFF.baseMs} to {@link BACKOFF.maxMs},
 * each with ±50 % jitter so that many clients cut off at once do not come back at once.
 */
export declare const BACKOFF: {
    readonly baseMs: 250;
    readonly factor: 2;
    readonly maxMs: 10000;
    readonly jitter: 0.5;
};
export declare class Backoff {
    private readonly random;
    private readonly policy;
    private attempts;
    constructor(random?: () => number, policy?: typeof BACKOFF);
    /** The delay before the next try (and counts it). */
    next(): number;
    /** After a success: the next delay starts from the base again. */
    reset(): void;
}
