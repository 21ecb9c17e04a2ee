/** A small typed event emitter: `on(name, fn)` returns the function that removes `fn`. */

export type Listener<T> = (value: T) => void;

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  /** Calls every listener of `name`; one that throws does not stop the others. */
  emit<K extends keyof Events>(name: K, value: Events[K]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (error) {
        console.error(`jobspine: a "${String(name)}" listener threw`, error);
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}

/** What offers listeners (the client and its watches): `on(name, fn)` adds `fn` and
 * returns the function that removes it; the class emits through `emitter`. */
export class Listenable<Events extends object> {
  protected readonly emitter = new Emitter<Events>();

  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    return this.emitter.on(name, listener);
  }
}
