// The REST calls the page makes beside the client's own (recovery options, checkpoint,
// audit trail, replay, stats, supervisor, delete). Errors carry the contract's envelope:
// {code, message, details}, like the client's JobspineError.

export class ApiError extends Error {
  /** @param {string} code @param {string} message @param {unknown} details @param {number} status */
  constructor(code, message, details, status) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.details = details;
    this.status = status;
  }
}

/** Audit entries asked for per request (the route's maximum) and shown at most. */
const AUDIT_PAGE = 200;
const AUDIT_SHOWN = 1000;

export class Api {
  /** @param {() => string} token */
  constructor(token) {
    this.token = token;
  }

  /** @param {string} method @param {string} path @returns {Promise<any>} */
  async call(method, path) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${this.token()}`, Accept: "application/json" },
        cache: "no-store",
      });
    } catch {
      throw new ApiError("unavailable", "the server cannot be reached", null, 0);
    }
    if (response.status === 204) return null;
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = body && typeof body === "object" ? body.error : null;
      throw new ApiError(
        error?.code ?? "unavailable",
        error?.message ?? `the server answered ${response.status}`,
        error?.details ?? null,
        response.status,
      );
    }
    return body;
  }

  /** @param {Record<string, string | number | undefined>} query */
  listJobs(query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== "") params.set(key, String(value));
    }
    return this.call("GET", `/api/jobs?${params}`);
  }

  /** @param {string} id */
  recovery(id) {
    return this.call("GET", `/api/jobs/${encodeURIComponent(id)}/recovery`);
  }

  /** The checkpoint, or null when the job has none. @param {string} id */
  async checkpoint(id) {
    try {
      return await this.call("GET", `/api/jobs/${encodeURIComponent(id)}/checkpoint`);
    } catch (error) {
      if (error instanceof ApiError && error.code === "not_found") return null;
      throw error;
    }
  }

  /**
   * The audit trail, oldest first, read page by page (the route pages it) up to
   * AUDIT_SHOWN entries: {items, next_cursor}, next_cursor set when more were left unread.
   * @param {string} id
   * @returns {Promise<{items: any[], next_cursor: string | null}>}
   */
  async audit(id) {
    const path = `/api/jobs/${encodeURIComponent(id)}/audit?limit=${AUDIT_PAGE}`;
    /** @type {any[]} */
    const items = [];
    /** @type {string | null} */
    let cursor = null;
    do {
      const page = await this.call("GET", cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path);
      items.push(...page.items);
      cursor = page.next_cursor ?? null;
    } while (cursor !== null && items.length < AUDIT_SHOWN);
    return { items, next_cursor: cursor };
  }

  /** Every event still in the backlog: {events, recovered, job}. @param {string} id */
  events(id) {
    return this.call("GET", `/api/jobs/${encodeURIComponent(id)}/events?after_seq=0`);
  }

  /** @param {string} id */
  deleteJob(id) {
    return this.call("DELETE", `/api/jobs/${encodeURIComponent(id)}`);
  }

  stats() {
    return this.call("GET", "/api/stats");
  }

  supervisor() {
    return this.call("GET", "/api/admin/supervisor");
  }

  /** The transition table of packages/shared (jobspine_shared.states.states_document). */
  async states() {
    const response = await fetch("./states.json", { cache: "no-store" });
    if (!response.ok) throw new ApiError("unavailable", "the state table cannot be loaded", null, response.status);
    return response.json();
  }
}
