/**
 * JobspineError: every failure of a call, with the code of the contract's error envelope
 * (`{code, message, details?}`), so callers branch on `code`, never on the message.
 */
/** Codes the client makes itself, besides the server's (`not_found`, `rate_limited`, …). */
export declare const CLIENT_CODES: {
    /** No answer within the call's time limit, or the connection went away meanwhile. */
    readonly timeout: "timeout";
    /** The server could not be reached (network error), or answered something unreadable. */
    readonly unavailable: "unavailable";
    /** The client was closed before the call could finish. */
    readonly closed: "closed";
};
export declare class JobspineError extends Error {
    readonly name = "JobspineError";
    readonly code: string;
    readonly details: Record<string, unknown> | undefined;
    constructor(code: string, message: string, details?: Record<string, unknown>);
    /** The error of an envelope `{code, message, details?}`; anything else is `unavailable`. */
    static fromEnvelope(value: unknown, fallback?: string): JobspineError;
}
export declare function isRecord(value: unknown): value is Record<string, unknown>;
