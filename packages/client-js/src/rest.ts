/**
 * The REST calls of the client (`/api/jobs…`): bearer token, JSON bodies, and the error
 * envelope `{"error": {code, message, details?}}` turned into a {@link JobspineError}.
 */

import { CLIENT_CODES, JobspineError, isRecord } from "./errors.js";
import type { TokenSource } from "./token.js";
import type { CreateJob, Job, JobPage, ListQuery } from "./wire.js";

/** Longest wait for one REST answer. */
export const REST_TIMEOUT_MS = 30_000;

export class RestApi {
  constructor(
    private readonly baseUrl: string,
    private readonly tokens: TokenSource,
  ) {}

  create(fields: CreateJob): Promise<Job> {
    return this.call<Job>("POST", "/api/jobs", fields);
  }

  get(jobId: string): Promise<Job> {
    return this.call<Job>("GET", jobPath(jobId));
  }

  list(query: ListQuery = {}): Promise<JobPage> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) params.set(key, String(value));
    }
    const search = params.toString();
    return this.call<JobPage>("GET", search === "" ? "/api/jobs" : `/api/jobs?${search}`);
  }

  /** `POST /api/jobs/{id}/{action}` (pause, resume, cancel, restart): the job after it. */
  act(jobId: string, action: "pause" | "resume" | "cancel" | "restart", body?: object): Promise<Job> {
    return this.call<Job>("POST", `${jobPath(jobId)}/${action}`, body ?? {});
  }

  private async call<T>(method: string, path: string, body?: object): Promise<T> {
    const token = await this.tokens.current();
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(REST_TIMEOUT_MS) };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, init);
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === "TimeoutError";
      throw new JobspineError(
        timedOut ? CLIENT_CODES.timeout : CLIENT_CODES.unavailable,
        timedOut ? `${method} ${path}: no answer within ${REST_TIMEOUT_MS} ms` : `${method} ${path}: ${String(error)}`,
      );
    }
    let parsed: unknown = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const envelope = isRecord(parsed) ? parsed["error"] : undefined;
      throw JobspineError.fromEnvelope(envelope, `${method} ${path}: HTTP ${response.status}`);
    }
    return parsed as T;
  }
}

function jobPath(jobId: string): string {
  return `/api/jobs/${encodeURIComponent(jobId)}`;
}
