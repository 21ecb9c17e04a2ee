/** @jobspine/client: the TypeScript client of jobspine (docs/clients.md). */
export { JobspineClient, CALL_TIMEOUT_MS, type ClientOptions, type Status } from "./client.js";
export { JobspineError, CLIENT_CODES } from "./errors.js";
export { JobWatch, type JobWatchEvents } from "./watch.js";
export { UserWatch, type UserWatchEvents } from "./user_watch.js";
export { applyEvent } from "./fold.js";
export { JobStream, type Outcome, type Step } from "./stream.js";
export { Backoff, BACKOFF } from "./backoff.js";
export { tokenExp, refreshDelayMs, type TokenOption } from "./token.js";
export type { StorageLike } from "./storage.js";
export type * from "./wire.js";
