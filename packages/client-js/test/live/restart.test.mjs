// A watcher through a server restart: Postgres, SIGKILL, the same port. The job goes on
// under the same lease after the restart; the watch ends equal to the server's snapshot,
// having fired `event` for every seq exactly once; the new process saw ONE job:sync for
// both watched jobs, then one job:subscribe each (its /metrics count the calls).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ScriptedWorker, ServerProcess, eventFields, freePort, mintToken, recordedClient, requireEnv, waitFor } from "../support/live.mjs";

let server;

/** The new process's `jobspine_socket_calls_total` on `/` with outcome ok, by event. */
async function socketCalls(target) {
  const text = await (await fetch(`${target.url}/metrics`)).text();
  const calls = {};
  for (const match of text.matchAll(/^jobspine_socket_calls_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...match[1].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.namespace === "/" && labels.outcome === "ok") calls[labels.event] = Number(match[2]);
  }
  return calls;
}
before(async () => {
  const database = requireEnv("JOBSPINE_TEST_DATABASE_URL");
  server = await new ServerProcess(await freePort(), { DATABASE_URL: database, PROGRESS_EVENTS_PER_S: "0" }).start();
});
after(async () => {
  await server?.stop();
});

test("a watch through a SIGKILL restart ends equal to the snapshot, each seq once", async () => {
  const token = mintToken("restart-user");
  const { client, statuses } = recordedClient({ url: server.url, token: async () => token });
  await client.connect();
  const worker = new ScriptedWorker(server.url);
  try {
    const job = await client.create({ type: "restart", input: { steps: 6 } });
    const idle = await client.create({ type: "restart-idle" });
    const other = client.watch(idle.id);
    await other.ready;
    const watch = client.watch(job.id);
    const seen = [];
    watch.on("event", (event) => seen.push(event.seq));
    await watch.ready;
    const { lease } = await worker.call("claim", { types: ["restart"] });
    const fenced = { job_id: job.id, lease };
    await worker.call("progress", { ...fenced, progress: 10, step: "step 1/6" });
    await worker.call("checkpoint", { ...fenced, data: { completed_steps: 1 }, progress: 20 });
    await waitFor(() => watch.lastSeq === 4, { what: "seq 4 before the kill", describe: () => `at ${watch.lastSeq}` });

    await server.kill(); // SIGKILL: no goodbye to anyone
    await waitFor(() => statuses.at(-1) === "reconnecting", { what: "the client to notice" });
    await server.start(); // the same port, the same database

    for (const progress of [40, 60, 80]) await worker.call("progress", { ...fenced, progress, step: `at ${progress}` });
    await worker.call("complete", { ...fenced, result: { completed_steps: 6 } });
    await waitFor(() => watch.job?.state === "completed" && client.status === "live", {
      what: "completed and live",
      describe: () => `${watch.job?.state} ${client.status}`,
    });

    const snapshot = await client.get(job.id);
    assert.deepEqual(eventFields(watch.job), eventFields(snapshot));
    assert.deepEqual(seen, Array.from({ length: snapshot.seq - 1 }, (_, i) => i + 2), "every seq after the first state once");
    assert.deepEqual(statuses.slice(0, 2), ["connecting", "live"]);
    assert.deepEqual(statuses.slice(-2), ["reconnecting", "live"]);
    assert.deepEqual(await socketCalls(server), { "job:subscribe": 2, "job:sync": 1 });
    assert.equal(other.lastSeq, 1);
  } finally {
    worker.close();
    await client.close();
  }
});
