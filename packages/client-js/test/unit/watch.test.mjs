// JobWatch and UserWatch against a scripted host (no socket): what they emit, when they
// ask the server, and what they store.
import assert from "node:assert/strict";
import { test } from "node:test";

import { JobWatch, UserWatch } from "../../dist/index.js";
import { WatchStore } from "../../dist/storage.js";
import { syncAll } from "../../dist/sync.js";
import { JOB_ID, event, snapshot } from "../support/jobs.mjs";

/** A host whose answers the test gives: each call waits in `pending` until answered. */
function scriptedHost(storage) {
  const calls = [];
  return {
    calls,
    connected: true,
    store: new WatchStore(storage, "jobspine:test"),
    forgotten: [],
    call(kind, args) {
      return new Promise((resolve, reject) => calls.push({ kind, args, resolve, reject }));
    },
    subscribe(jobId, cursor) {
      return this.call("subscribe", { jobId, cursor });
    },
    unsubscribe(jobId) {
      calls.push({ kind: "unsubscribe", args: { jobId } });
    },
    sync(cursors) {
      return this.call("sync", Object.fromEntries(cursors));
    },
    list(query) {
      return this.call("list", query);
    },
    forget(watch) {
      this.forgotten.push(watch);
    },
  };
}

function memoryStorage() {
  const items = new Map();
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v), removeItem: (k) => void items.delete(k) };
}

function recorder(watch) {
  const log = [];
  watch.on("event", (ev) => log.push(`event ${ev.seq}`));
  watch.on("change", (job) => log.push(`change ${job.seq}`));
  watch.on("reset", (job) => log.push(`reset ${job.seq}`));
  return log;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A watch of `host` that joined: its subscribe answered with the snapshot at `seq`. */
async function joinedWatch(host, seq = 2) {
  const watch = new JobWatch(JOB_ID, host);
  await watch.loaded;
  const joining = watch.join();
  host.calls[0].resolve({ recovered: false, events: [], job: snapshot({ seq }) });
  await joining;
  return watch;
}

test("the first answer resolves ready; each live event fires event then change, once", async () => {
  const host = scriptedHost();
  const watch = new JobWatch(JOB_ID, host);
  const log = recorder(watch);
  await watch.loaded;
  const joining = watch.join();
  watch.live(event(3)); // before the answer: held
  host.calls[0].resolve({ recovered: false, events: [], job: snapshot({ seq: 2 }) });
  await joining;
  assert.equal((await watch.ready).seq, 3);
  // The held event continues the snapshot at once: one change, with the job after it.
  assert.deepEqual(log, ["event 3", "change 3"]);
  watch.live(event(3));
  watch.live(event(4));
  assert.deepEqual(log.slice(2), ["event 4", "change 4"]);
  assert.equal(host.calls.length, 1, "no gap: no call");
});

test("a gap asks one job:sync with the cursor; its replay fills it in order", async () => {
  const host = scriptedHost();
  const watch = await joinedWatch(host);
  const log = recorder(watch);
  watch.live(event(5));
  watch.live(event(6));
  assert.deepEqual(host.calls.slice(1).map((c) => [c.kind, c.args]), [["sync", { [JOB_ID]: { after_seq: 2, epoch: "a3c9" } }]]);
  host.calls[1].resolve(new Map([[JOB_ID, { recovered: true, events: [event(3), event(4), event(5)], job: snapshot({ seq: 5 }) }]]));
  await settle();
  assert.deepEqual(log.filter((l) => l.startsWith("event")), ["event 3", "event 4", "event 5", "event 6"]);
  assert.equal(watch.lastSeq, 6);
  assert.equal(host.calls.length, 2);
});

test("recovered false on a known state fires reset then change", async () => {
  const watch = await joinedWatch(scriptedHost());
  const log = recorder(watch);
  watch.slot({ recovered: false, events: [], job: snapshot({ seq: 400, state: "completed" }) });
  assert.deepEqual(log, ["reset 400", "change 400"]);
});

test("the stored snapshot is the cursor of the first subscribe; close() forgets it", async () => {
  const storage = memoryStorage();
  await joinedWatch(scriptedHost(storage), 7);
  assert.deepEqual(JSON.parse(storage.items.get(`jobspine:test:watch:${JOB_ID}`)).job.seq, 7);

  const second = scriptedHost(storage); // a new process with the same storage
  const resumed = new JobWatch(JOB_ID, second);
  await resumed.loaded;
  assert.equal(resumed.lastSeq, 7, "the stored state, before any answer");
  void resumed.join();
  assert.deepEqual(second.calls[0].args, { jobId: JOB_ID, cursor: { after_seq: 7, epoch: "a3c9" } });
  resumed.close();
  assert.equal(storage.items.size, 0);
  assert.deepEqual(second.calls.at(-1), { kind: "unsubscribe", args: { jobId: JOB_ID } });
  await assert.rejects(resumed.ready, { code: "closed" });
});

test("not_found ends the watch: ready rejects, the cursor is forgotten", async () => {
  const storage = memoryStorage();
  const host = scriptedHost(storage);
  const watch = await joinedWatch(host);
  watch.slot({ error: { code: "not_found", message: "No such job." } });
  assert.equal(watch.closed, true);
  assert.deepEqual(host.forgotten, [watch]);
  assert.equal(storage.items.size, 0);
});

test("syncAll sends 500 jobs a call, epochs beside cursors, and asks again for truncated slots", async () => {
  const cursors = new Map();
  for (let i = 0; i < 501; i += 1) cursors.set(`job-${i}`, i === 0 ? null : { after_seq: i, epoch: "e" });
  const payloads = [];
  const slots = await syncAll(async (payload) => {
    payloads.push(payload);
    const ids = Object.keys(payload.cursors);
    const results = {};
    ids.forEach((id, n) => {
      results[id] = payloads.length === 1 && n === ids.length - 1 ? { truncated: true } : { recovered: true, events: [], job: { id } };
    });
    return { ok: true, results };
  }, cursors);
  assert.deepEqual(payloads.map((p) => Object.keys(p.cursors).length), [500, 2]);
  assert.equal(payloads[0].cursors["job-0"], 0);
  assert.equal("job-0" in payloads[0].epochs, false);
  assert.equal(payloads[0].epochs["job-1"], "e");
  assert.deepEqual(Object.keys(payloads[1].cursors), ["job-499", "job-500"]);
  assert.equal(slots.size, 501);
});

test("a user watch adopts the listing, follows created jobs and fills gaps per job", async () => {
  const host = scriptedHost();
  const mine = new UserWatch(host);
  const changes = [];
  mine.on("change", (job) => changes.push(`${job.id} ${job.seq}`));
  const reloading = mine.reload();
  host.calls[0].resolve({ items: [snapshot({ seq: 3 })], next_cursor: null });
  await reloading;
  await mine.ready;
  assert.deepEqual(changes, [`${JOB_ID} 3`]);
  const other = "7f000000-0000-4000-8000-000000000000";
  const created = snapshot({ id: other });
  mine.live({ ...event(1, "job:created", { job: created }), job_id: other });
  mine.live(event(5)); // seq 4 missing
  assert.deepEqual(changes.slice(1), [`${other} 1`]);
  assert.deepEqual(host.calls.at(-1).args, { [JOB_ID]: { after_seq: 3, epoch: "a3c9" } });
  host.calls.at(-1).resolve(new Map([[JOB_ID, { recovered: true, events: [event(4)], job: snapshot({ seq: 4 }) }]]));
  await settle();
  assert.equal(mine.jobs.get(JOB_ID).seq, 5);
  assert.equal(mine.jobs.size, 2);
});
