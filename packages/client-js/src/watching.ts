/** What both watches (`client.watch(id)`, `client.watchUser()`) share: listeners, `ready`,
 * and how a watch stops. */

import { Deferred } from "./deferred.js";
import { Listenable } from "./emitter.js";
import type { JobspineError } from "./errors.js";
import type { WatchHost } from "./host.js";

export abstract class Watch<Events extends object, Ready> extends Listenable<Events> {
  /** Resolves once the server's first answer is applied; rejects when the watch cannot
   * be had (`not_found`, …) or is closed first. */
  readonly ready: Promise<Ready>;
  protected readonly first = new Deferred<Ready>();
  protected isClosed = false;

  constructor(protected readonly host: WatchHost) {
    super();
    this.ready = this.first.promise;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Stop (the client is closing, or the watch ended): no more events, `ready` rejects
   * with `reason` if it is still pending. Stored cursors stay. */
  detach(reason: JobspineError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.first.reject(reason);
    this.host.forget(this);
    this.emitter.clear();
  }
}
