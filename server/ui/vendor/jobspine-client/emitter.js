/** A small typed event emitter: `on(name, fn)` returns the function that removes `fn`. */
export class Emitter {
    listeners = new Map();
    on(name, listener) {
        let set = this.listeners.get(name);
        if (set === undefined) {
            set = new Set();
            this.listeners.set(name, set);
        }
        set.add(listener);
        return () => {
            set.delete(listener);
        };
    }
    /** Calls every listener of `name`; one that throws does not stop the others. */
    emit(name, value) {
        const set = this.listeners.get(name);
        if (set === undefined)
            return;
        for (const listener of [...set]) {
            try {
                listener(value);
            }
            catch (error) {
                console.error(`jobspine: a "${String(name)}" listener threw`, error);
            }
        }
    }
    clear() {
        this.listeners.clear();
    }
}
/** What offers listeners (the client and its watches): `on(name, fn)` adds `fn` and
 * returns the function that removes it; the class emits through `emitter`. */
export class Listenable {
    emitter = new Emitter();
    on(name, listener) {
        return this.emitter.on(name, listener);
    }
}
