/** A promise settled from outside, once; never an unhandled rejection for a caller who
 * does not await it. */
export declare class Deferred<T> {
    readonly promise: Promise<T>;
    private settle;
    constructor();
    get pending(): boolean;
    resolve(value: T): void;
    reject(error: Error): void;
}
