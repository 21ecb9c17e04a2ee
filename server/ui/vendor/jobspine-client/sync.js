/**
 * `job:sync` payloads and answers: cursors in chunks the server accepts, slots that were
 * cut by the reply budget asked for again, each slot read as an answer or an error.
 */
import { JobspineError, isRecord } from "./errors.js";
/** Jobs per `job:sync` call (the server's limit). */
export const SYNC_CHUNK = 500;
/** Every job's slot, asking again for those the server cut (`{truncated: true}`). A job
 * without a cursor asks from seq 0 (the server answers a snapshot, or the whole backlog). */
export async function syncAll(call, cursors) {
    const slots = new Map();
    let pending = [...cursors.keys()];
    while (pending.length > 0) {
        const chunk = pending.slice(0, SYNC_CHUNK);
        pending = pending.slice(SYNC_CHUNK);
        const payload = { cursors: {}, epochs: {} };
        for (const jobId of chunk) {
            const cursor = cursors.get(jobId) ?? null;
            payload.cursors[jobId] = cursor === null ? 0 : cursor.after_seq;
            if (cursor !== null)
                payload.epochs[jobId] = cursor.epoch;
        }
        const ack = await call(payload);
        const results = isRecord(ack) && isRecord(ack["results"]) ? ack["results"] : {};
        const cut = [];
        for (const jobId of chunk) {
            const slot = results[jobId];
            if (isRecord(slot) && slot["truncated"] === true)
                cut.push(jobId);
            else if (isRecord(slot))
                slots.set(jobId, slot);
        }
        pending = [...cut, ...pending];
    }
    return slots;
}
/** A slot as an answer, or the error the server put in it. */
export function slotAnswer(slot) {
    if ("error" in slot)
        return JobspineError.fromEnvelope(slot.error);
    if ("job" in slot && isRecord(slot.job))
        return slot;
    return new JobspineError("unavailable", "job:sync answered a slot without a job");
}
