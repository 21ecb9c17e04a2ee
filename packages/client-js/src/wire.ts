/**
 * The wire types the client uses, by the names its API speaks. Every shape comes from
 * src/generated/wire.ts, generated from packages/shared/schema/wire.schema.json (the one
 * source of truth for server and clients); only the REST list query is the client's own.
 */

import type {
  CreateJob,
  Error as ErrorBody,
  Event as JobEvent,
  Job,
  JobError,
  Replay,
} from "./generated/wire.js";

export type * from "./generated/wire.js";
export type { ErrorBody, JobEvent, JobError as JobErrorBody, Replay as ReplayAnswer };

export type JobState = Job["state"];

/** `client.create(fields)`: `type`, and `input` with any optional v2 field. */
export type CreateFields = CreateJob;

/** `GET /api/jobs` filters (each optional); `cursor` is the previous page's `next_cursor`. */
export interface ListQuery {
  state?: JobState;
  type?: string;
  limit?: number;
  cursor?: string;
  tag?: string;
  parent_id?: string;
  priority?: number;
  user_id?: string;
}
