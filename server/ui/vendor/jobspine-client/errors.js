/**
 * JobspineError: every failure of a call, with the code of the contract's error envelope
 * (`{code, message, details?}`), so callers branch on `code`, never on the message.
 */
/** Codes the client makes itself, besides the server's (`not_found`, `rate_limited`, …). */
export const CLIENT_CODES = {
    /** No answer within the call's time limit, or the connection went away meanwhile. */
    timeout: "timeout",
    /** The server could not be reached (network error), or answered something unreadable. */
    unavailable: "unavailable",
    /** The client was closed before the call could finish. */
    closed: "closed",
};
export class JobspineError extends Error {
    name = "JobspineError";
    code;
    details;
    constructor(code, message, details) {
        super(message);
        this.code = code;
        this.details = details;
    }
    /** The error of an envelope `{code, message, details?}`; anything else is `unavailable`. */
    static fromEnvelope(value, fallback = "the server answered without an error body") {
        if (isRecord(value) && typeof value["code"] === "string") {
            const message = typeof value["message"] === "string" ? value["message"] : value["code"];
            const details = isRecord(value["details"]) ? value["details"] : undefined;
            return new JobspineError(value["code"], message, details);
        }
        return new JobspineError(CLIENT_CODES.unavailable, fallback);
    }
}
export function isRecord(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}
