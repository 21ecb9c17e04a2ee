/**
 * Where tokens come from: a fixed string, or a function called on each connect and before
 * the current token's `exp` (its result is then sent with `auth:refresh`).
 */
/** The `exp` claim (seconds) of a JWT, or null when it has none or is not a JWT. */
export function tokenExp(token) {
    const payload = token.split(".")[1];
    if (payload === undefined)
        return null;
    try {
        const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
        const text = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
        const claims = JSON.parse(text);
        if (typeof claims === "object" && claims !== null && "exp" in claims) {
            const exp = claims.exp;
            return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
        }
    }
    catch {
        return null;
    }
    return null;
}
/** How long before `exp` a refresh happens: a fifth of the time left, from 1 s to 60 s. */
export function refreshDelayMs(exp, nowMs) {
    const left = exp * 1000 - nowMs;
    const margin = Math.min(60_000, Math.max(1_000, left / 5));
    return Math.max(0, left - margin);
}
export class TokenSource {
    option;
    latest;
    constructor(option) {
        this.option = option;
        this.latest = typeof option === "string" ? option : null;
    }
    /** False for a fixed string: an expired one cannot be replaced. */
    get refreshable() {
        return typeof this.option === "function";
    }
    /** A new token from the function (the fixed string otherwise). */
    async fresh() {
        if (typeof this.option === "string")
            return this.option;
        const token = await this.option();
        if (typeof token !== "string" || token === "")
            throw new TypeError("the token function must resolve to a non-empty string");
        this.latest = token;
        return token;
    }
    /** The latest token while it is not due for a refresh; a fresh one otherwise (REST calls). */
    async current(nowMs = Date.now()) {
        const latest = this.latest;
        if (latest !== null && !this.refreshable)
            return latest;
        if (latest !== null) {
            const exp = tokenExp(latest);
            if (exp === null || refreshDelayMs(exp, nowMs) > 0)
                return latest;
        }
        return this.fresh();
    }
}
