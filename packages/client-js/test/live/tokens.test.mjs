// Sessions and tokens (JWT_LEEWAY_S=0, so a session ends at its token's exp): a token
// function is called again before exp and the new token sent with auth:refresh keeps the
// same socket past the first exp; a fixed token that expires ends in status `expired`.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ScriptedWorker, ServerProcess, freePort, mintToken, recordedClient, tokenExpMs, waitFor } from "../support/live.mjs";

const TTL_S = 3;
let server;
before(async () => {
  server = await new ServerProcess(await freePort(), { JWT_LEEWAY_S: "0" }).start();
});
after(async () => {
  await server?.stop();
});

test("a refresh before exp keeps the socket past the first token's exp", async () => {
  const issued = [];
  const { client, statuses } = recordedClient({
    url: server.url,
    token: async () => {
      issued.push(mintToken("refresh-user", { ttlS: TTL_S }));
      return issued.at(-1);
    },
  });
  const worker = new ScriptedWorker(server.url);
  try {
    await client.connect();
    const firstExpMs = tokenExpMs(issued[0]);
    const job = await client.create({ type: "refresh" });
    const watch = client.watch(job.id);
    await watch.ready;
    // The session would end at the first token's exp; wait until well past it.
    await waitFor(() => Date.now() > firstExpMs + 1000 && issued.length >= 2, {
      what: "the first token's exp to pass after a refresh",
      describe: () => `${issued.length} tokens`,
    });
    const { lease } = await worker.call("claim", { types: ["refresh"] });
    await worker.call("progress", { job_id: job.id, lease, progress: 50 });
    await waitFor(() => watch.job?.progress === 50, { what: "a live event after the first exp" });
    assert.deepEqual(statuses, ["connecting", "live"], "no reconnect: the same socket");
    assert.ok(issued.length >= 2);
  } finally {
    worker.close();
    await client.close();
  }
});

test("a fixed token that expires ends in expired, without reconnecting", async () => {
  const token = mintToken("expiring-user", { ttlS: 2 });
  const { client, statuses } = recordedClient({ url: server.url, token });
  try {
    await client.connect();
    await waitFor(() => client.status === "expired", { what: "expired", withinMs: 10000 });
    assert.ok(Date.now() >= tokenExpMs(token));
    assert.deepEqual(statuses, ["connecting", "live", "expired"]);
  } finally {
    await client.close();
  }
});

test("an already expired fixed token is refused: connect rejects, status expired", async () => {
  const { client, statuses } = recordedClient({ url: server.url, token: mintToken("late-user", { ttlS: -5 }) });
  await assert.rejects(client.connect(), { name: "JobspineError", code: "unauthorized" });
  assert.deepEqual(statuses, ["connecting", "expired"]);
  await client.close();
});
