/** A promise settled from outside, once; never an unhandled rejection for a caller who
 * does not await it. */

export class Deferred<T> {
  readonly promise: Promise<T>;
  private settle: { resolve: (value: T) => void; reject: (error: Error) => void } | null = null;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.promise.catch(() => undefined);
  }

  get pending(): boolean {
    return this.settle !== null;
  }

  resolve(value: T): void {
    this.settle?.resolve(value);
    this.settle = null;
  }

  reject(error: Error): void {
    this.settle?.reject(error);
    this.settle = null;
  }
}
