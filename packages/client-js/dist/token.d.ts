/**
 * Where tokens come from: a fixed string, or a function called on each connect and before
 * the current token's `exp` (its result is then sent with `auth:refresh`).
 */
export type TokenOption = string | (() => Promise<string>);
/** The `exp` claim (seconds) of a JWT, or null when it has none or is not a JWT. */
export declare function tokenExp(token: string): number | null;
/** How long before `exp` a refresh happens: a fifth of the time left, from 1 s to 60 s. */
export declare function refreshDelayMs(exp: number, nowMs: number): number;
export declare class TokenSource {
    private readonly option;
    private latest;
    constructor(option: TokenOption);
    /** False for a fixed string: an expired one cannot be replaced. */
    get refreshable(): boolean;
    /** A new token from the function (the fixed string otherwise). */
    fresh(): Promise<string>;
    /** The latest token while it is not due for a refresh; a fresh one otherwise (REST calls). */
    current(nowMs?: number): Promise<string>;
}
