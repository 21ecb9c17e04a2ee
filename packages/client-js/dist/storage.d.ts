/**
 * Cursors and snapshots kept in the caller's `storage` (localStorage in a browser, any
 * getItem/setItem store in Node), so that a restarted process resumes each watch by replay.
 * Values are JSON text under `jobspine:<url>:watch:<job id>`; a store may answer with
 * promises. Storage problems never break a watch: they cost the resume, not the job.
 */
import type { Job } from "./wire.js";
type MaybePromise<T> = T | Promise<T>;
export interface StorageLike {
    getItem(key: string): MaybePromise<string | null | undefined>;
    setItem(key: string, value: string): MaybePromise<unknown>;
    removeItem?(key: string): MaybePromise<unknown>;
}
export declare class WatchStore {
    private readonly storage;
    private readonly prefix;
    constructor(storage: StorageLike | undefined, prefix: string);
    private key;
    /** The stored snapshot of `jobId`, or null (none, unreadable, or another job). */
    load(jobId: string): Promise<Job | null>;
    save(job: Job): void;
    remove(jobId: string): void;
    private quietly;
}
export {};
