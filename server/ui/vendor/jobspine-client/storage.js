/**
 * Cursors and snapshots kept in the caller's `storage` (localStorage in a browser, any
 * getItem/setItem store in Node), so that a restarted process resumes each watch by replay.
 * Values are JSON text under `jobspine:<url>:watch:<job id>`; a store may answer with
 * promises. Storage problems never break a watch: they cost the resume, not the job.
 */
import { isRecord } from "./errors.js";
const FORMAT = 1;
export class WatchStore {
    storage;
    prefix;
    constructor(storage, prefix) {
        this.storage = storage;
        this.prefix = prefix;
    }
    key(jobId) {
        return `${this.prefix}:watch:${jobId}`;
    }
    /** The stored snapshot of `jobId`, or null (none, unreadable, or another job). */
    async load(jobId) {
        if (this.storage === undefined)
            return null;
        try {
            const text = await this.storage.getItem(this.key(jobId));
            if (typeof text !== "string")
                return null;
            const value = JSON.parse(text);
            if (!isRecord(value) || value["format"] !== FORMAT || !isRecord(value["job"]))
                return null;
            const job = value["job"];
            const valid = job.id === jobId && Number.isInteger(job.seq) && typeof job.epoch === "string";
            return valid ? job : null;
        }
        catch {
            return null;
        }
    }
    save(job) {
        if (this.storage === undefined)
            return;
        this.quietly(() => this.storage?.setItem(this.key(job.id), JSON.stringify({ format: FORMAT, job })));
    }
    remove(jobId) {
        const storage = this.storage;
        if (storage?.removeItem === undefined)
            return;
        this.quietly(() => storage.removeItem?.(this.key(jobId)));
    }
    quietly(write) {
        try {
            const result = write();
            if (result instanceof Promise)
                result.catch(() => undefined);
        }
        catch {
            // quota exceeded, storage disabled: the watch goes on without it
        }
    }
}
