/** A promise settled from outside, once; never an unhandled rejection for a caller who
 * does not await it. */
export class Deferred {
    promise;
    settle = null;
    constructor() {
        this.promise = new Promise((resolve, reject) => {
            this.settle = { resolve, reject };
        });
        this.promise.catch(() => undefined);
    }
    get pending() {
        return this.settle !== null;
    }
    resolve(value) {
        this.settle?.resolve(value);
        this.settle = null;
    }
    reject(error) {
        this.settle?.reject(error);
        this.settle = null;
    }
}
