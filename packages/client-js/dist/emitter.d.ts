/** A small typed event emitter: `on(name, fn)` returns the function that removes `fn`. */
export type Listener<T> = (value: T) => void;
export declare class Emitter<Events extends object> {
    private readonly listeners;
    on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void;
    /** Calls every listener of `name`; one that throws does not stop the others. */
    emit<K extends keyof Events>(name: K, value: Events[K]): void;
    clear(): void;
}
