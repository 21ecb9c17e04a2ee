/**
 * The REST calls of the client (`/api/jobs…`): bearer token, JSON bodies, and the error
 * envelope `{"error": {code, message, details?}}` turned into a {@link JobspineError}.
 */
import { CLIENT_CODES, JobspineError, isRecord } from "./errors.js";
/** Longest wait for one REST answer. */
export const REST_TIMEOUT_MS = 30_000;
export class RestApi {
    baseUrl;
    tokens;
    constructor(baseUrl, tokens) {
        this.baseUrl = baseUrl;
        this.tokens = tokens;
    }
    create(fields) {
        return this.call("POST", "/api/jobs", fields);
    }
    get(jobId) {
        return this.call("GET", jobPath(jobId));
    }
    list(query = {}) {
        const params = new URLSearchParams();
        for (const [key, value] of Object.entries(query)) {
            if (value !== undefined && value !== null)
                params.set(key, String(value));
        }
        const search = params.toString();
        return this.call("GET", search === "" ? "/api/jobs" : `/api/jobs?${search}`);
    }
    /** `POST /api/jobs/{id}/{action}` (pause, resume, cancel, restart): the job after it. */
    act(jobId, action, body) {
        return this.call("POST", `${jobPath(jobId)}/${action}`, body ?? {});
    }
    async call(method, path, body) {
        const token = await this.tokens.current();
        const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
        const init = { method, headers, signal: AbortSignal.timeout(REST_TIMEOUT_MS) };
        if (body !== undefined) {
            headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(body);
        }
        let response;
        try {
            response = await fetch(this.baseUrl + path, init);
        }
        catch (error) {
            const timedOut = error instanceof DOMException && error.name === "TimeoutError";
            throw new JobspineError(timedOut ? CLIENT_CODES.timeout : CLIENT_CODES.unavailable, timedOut ? `${method} ${path}: no answer within ${REST_TIMEOUT_MS} ms` : `${method} ${path}: ${String(error)}`);
        }
        let parsed = null;
        try {
            parsed = await response.json();
        }
        catch {
            parsed = null;
        }
        if (!response.ok) {
            const envelope = isRecord(parsed) ? parsed["error"] : undefined;
            throw JobspineError.fromEnvelope(envelope, `${method} ${path}: HTTP ${response.status}`);
        }
        return parsed;
    }
}
function jobPath(jobId) {
    return `/api/jobs/${encodeURIComponent(jobId)}`;
}
