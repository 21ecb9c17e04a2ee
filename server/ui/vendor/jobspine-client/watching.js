/** What both watches (`client.watch(id)`, `client.watchUser()`) share: listeners, `ready`,
 * and how a watch stops. */
import { Deferred } from "./deferred.js";
import { Listenable } from "./emitter.js";
export class Watch extends Listenable {
    host;
    /** Resolves once the server's first answer is applied; rejects when the watch cannot
     * be had (`not_found`, …) or is closed first. */
    ready;
    first = new Deferred();
    isClosed = false;
    constructor(host) {
        super();
        this.host = host;
        this.ready = this.first.promise;
    }
    get closed() {
        return this.isClosed;
    }
    /** Stop (the client is closing, or the watch ended): no more events, `ready` rejects
     * with `reason` if it is still pending. Stored cursors stay. */
    detach(reason) {
        if (this.isClosed)
            return;
        this.isClosed = true;
        this.first.reject(reason);
        this.host.forget(this);
        this.emitter.clear();
    }
}
