/** @jobspine/client: the TypeScript client of jobspine (docs/clients.md). */
export { JobspineClient, CALL_TIMEOUT_MS } from "./client.js";
export { JobspineError, CLIENT_CODES } from "./errors.js";
export { JobWatch } from "./watch.js";
export { UserWatch } from "./user_watch.js";
export { applyEvent } from "./fold.js";
export { JobStream } from "./stream.js";
export { Backoff, BACKOFF } from "./backoff.js";
export { tokenExp, refreshDelayMs } from "./token.js";
