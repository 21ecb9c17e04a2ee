// The client against a real server (memory store): calls, a watch from creation to
// completion, the user watch, and errors as JobspineError.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { JobspineError } from "../../dist/index.js";
import { ScriptedWorker, ServerProcess, eventFields, freePort, mintToken, recordedClient, waitFor, withClient } from "../support/live.mjs";

let server;
before(async () => {
  server = await new ServerProcess(await freePort()).start();
});
after(async () => {
  await server?.stop();
});

test("a watch sees every event of a job once and ends equal to the server's snapshot", async () => {
  const { client, statuses } = recordedClient({ url: server.url, token: mintToken("basics-1") });
  await client.connect();
  const worker = new ScriptedWorker(server.url);
  try {
    const job = await client.create({ type: "basics", input: { q: "é" }, priority: 3, tags: ["t:1"] });
    assert.equal(job.priority, 3);
    const watch = client.watch(job.id);
    const seen = [];
    watch.on("event", (event) => seen.push(event.seq));
    const first = await watch.ready;
    assert.equal(first.id, job.id);
    const claim = await worker.call("claim", { types: ["basics"] });
    for (const progress of [10, 20, 30]) {
      await worker.call("progress", { job_id: job.id, lease: claim.lease, progress });
    }
    await worker.call("complete", { job_id: job.id, lease: claim.lease, result: { answer: 42 } });
    await waitFor(() => watch.job?.state === "completed", { what: "completed" });
    const snapshot = await client.get(job.id);
    assert.deepEqual(seen, Array.from({ length: snapshot.seq - 1 }, (_, i) => i + 2));
    assert.equal(watch.lastSeq, snapshot.seq);
    assert.equal(watch.epoch, snapshot.epoch);
    assert.deepEqual(eventFields(watch.job), eventFields(snapshot));
    assert.deepEqual(statuses, ["connecting", "live"]);
  } finally {
    worker.close();
    await client.close();
  }
});

test("watchUser lists the user's jobs and follows new ones live", async () => {
  await withClient(server.url, "basics-2", async (client) => {
    const old = await client.create({ type: "basics" });
    const mine = client.watchUser();
    await mine.ready;
    assert.equal(mine.jobs.get(old.id)?.state, "created");
    const changes = [];
    mine.on("change", (job) => changes.push([job.id, job.state]));
    const fresh = await client.create({ type: "basics" });
    await client.pause(old.id);
    await waitFor(() => mine.jobs.get(fresh.id) && mine.jobs.get(old.id)?.state === "paused", { what: "both changes" });
    assert.deepEqual(changes, [
      [fresh.id, "created"],
      [old.id, "paused"],
    ]);
    const page = await client.list({ state: "paused" });
    assert.deepEqual(page.items.map((job) => job.id), [old.id]);
    const resumed = await client.resume(old.id);
    assert.equal(resumed.state, "created");
    assert.equal((await client.cancel(old.id)).state, "cancelled");
    const restarted = await client.restart(old.id, { again: true });
    assert.deepEqual(restarted.input, { again: true });
  });
});

test("refusals reject with JobspineError: code, message, details", async () => {
  await withClient(server.url, "basics-3", async (client) => {
    const job = await client.create({ type: "basics" });
    await client.cancel(job.id);
    await assert.rejects(client.pause(job.id), (error) => {
      assert.ok(error instanceof JobspineError);
      assert.equal(error.code, "invalid_transition");
      assert.equal(error.details.state, "cancelled");
      return true;
    });
    await assert.rejects(client.create({ type: "Not A Type" }), { code: "validation_error" });
    await assert.rejects(client.get("00000000-0000-4000-8000-000000000000"), { code: "not_found" });
    const missing = client.watch("00000000-0000-4000-8000-000000000000");
    await assert.rejects(missing.ready, { code: "not_found" });
  });
});

test("a refused token rejects connect and reports expired", async () => {
  const { client, statuses } = recordedClient({ url: server.url, token: "garbage" });
  await assert.rejects(client.connect(), { code: "unauthorized" });
  assert.deepEqual(statuses, ["connecting", "expired"]);
  await client.close();
});
