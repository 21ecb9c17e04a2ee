/**
 * `job:sync` payloads and answers: cursors in chunks the server accepts, slots that were
 * cut by the reply budget asked for again, each slot read as an answer or an error.
 */
import { JobspineError } from "./errors.js";
import type { ReplayAnswer, SyncSlot } from "./wire.js";
/** Jobs per `job:sync` call (the server's limit). */
export declare const SYNC_CHUNK = 500;
export interface Cursor {
    after_seq: number;
    epoch: string;
}
export type SyncCall = (payload: {
    cursors: Record<string, number>;
    epochs: Record<string, string>;
}) => Promise<unknown>;
/** Every job's slot, asking again for those the server cut (`{truncated: true}`). A job
 * without a cursor asks from seq 0 (the server answers a snapshot, or the whole backlog). */
export declare function syncAll(call: SyncCall, cursors: Map<string, Cursor | null>): Promise<Map<string, SyncSlot>>;
/** A slot as an answer, or the error the server put in it. */
export declare function slotAnswer(slot: SyncSlot): ReplayAnswer | JobspineError;
