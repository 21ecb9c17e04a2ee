// A client cut off from the server (a TCP proxy between them drops every connection):
// a burst larger than BACKLOG_SIZE meanwhile ends in `reset` then `live`; a short loss is
// filled by replay, each event once; a new process resumes a watch from storage by replay.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { JobspineClient } from "../../dist/index.js";
import { CuttableProxy, ScriptedWorker, ServerProcess, eventFields, freePort, mintToken, recordedClient, waitFor } from "../support/live.mjs";

const BACKLOG = 5;
let server;
let worker;
before(async () => {
  server = await new ServerProcess(await freePort(), { BACKLOG_SIZE: String(BACKLOG), PROGRESS_EVENTS_PER_S: "0" }).start();
  worker = new ScriptedWorker(server.url);
});
after(async () => {
  worker?.close();
  await server?.stop();
});

/** A running job of `sub` (created and claimed) and its fenced-call fields. */
async function runningJob(sub, type) {
  const created = await server.rest("POST", "/api/jobs", { token: mintToken(sub), body: { type } });
  assert.equal(created.status, 201);
  const { lease } = await worker.call("claim", { types: [type] });
  return { job: created.body, fenced: { job_id: created.body.id, lease } };
}

function record(watch) {
  const log = [];
  watch.on("event", (event) => log.push(`event ${event.seq}`));
  watch.on("reset", (job) => log.push(`reset ${job.seq}`));
  return log;
}

/** `client` connected, watching a running job of `sub`: the job, its fenced-call fields,
 * the watch and its log. */
async function watchRunningJob(client, sub, type) {
  await client.connect();
  const { job, fenced } = await runningJob(sub, type);
  const watch = client.watch(job.id);
  const log = record(watch);
  await waitFor(() => watch.job?.state === "running", { what: "running" });
  return { job, fenced, watch, log };
}

test("a burst larger than BACKLOG_SIZE while cut off ends in reset, then live", async () => {
  const proxy = await new CuttableProxy(server.port).listen();
  const { client, statuses } = recordedClient({ url: proxy.url, token: mintToken("burst-user") });
  try {
    const { job, fenced, watch, log } = await watchRunningJob(client, "burst-user", "burst");

    proxy.cut();
    await waitFor(() => client.status === "reconnecting", { what: "the client to notice the cut" });
    const burst = BACKLOG + 5;
    for (let i = 1; i <= burst; i += 1) await worker.call("progress", { ...fenced, progress: i * 5 });
    const missed = (await server.rest("GET", `/api/jobs/${job.id}`, { token: mintToken("burst-user") })).body;
    const before = log.length;
    proxy.restore();

    await waitFor(() => client.status === "live" && watch.lastSeq === missed.seq, {
      what: "live at the latest seq",
      describe: () => `${client.status} ${watch.lastSeq}/${missed.seq} ${JSON.stringify(log)}`,
    });
    assert.deepEqual(log.slice(before), [`reset ${missed.seq}`], "the snapshot replaced the state, no replayed events");
    assert.deepEqual(statuses.slice(-2), ["reconnecting", "live"]);
    assert.deepEqual(eventFields(watch.job), eventFields(missed));

    await worker.call("complete", { ...fenced, result: null });
    await waitFor(() => watch.job?.state === "completed", { what: "the next live event" });
    assert.equal(log.at(-1), `event ${missed.seq + 1}`);
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a short loss is filled by replay: every missed event once, no reset", async () => {
  const proxy = await new CuttableProxy(server.port).listen();
  const client = new JobspineClient({ url: proxy.url, token: mintToken("gap-user") });
  try {
    const { fenced, watch, log } = await watchRunningJob(client, "gap-user", "gap");
    const start = watch.lastSeq;

    proxy.cut();
    await waitFor(() => client.status === "reconnecting", { what: "the client to notice the cut" });
    for (const progress of [10, 20, 30]) await worker.call("progress", { ...fenced, progress });
    proxy.restore();

    await waitFor(() => client.status === "live" && watch.lastSeq === start + 3, { what: "caught up" });
    assert.deepEqual(log, [`event ${start + 1}`, `event ${start + 2}`, `event ${start + 3}`]);
    assert.equal(watch.job.progress, 30);
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a new process resumes a watch from storage by replay", async () => {
  const saved = new Map();
  const storage = {
    getItem: async (key) => saved.get(key) ?? null,
    setItem: async (key, value) => void saved.set(key, value),
    removeItem: async (key) => void saved.delete(key),
  };
  const token = mintToken("resume-user");
  const { job, fenced } = await runningJob("resume-user", "resume");

  const first = new JobspineClient({ url: server.url, token, storage });
  await first.connect();
  const watch = first.watch(job.id);
  await waitFor(() => watch.job?.state === "running", { what: "running" });
  const cursor = watch.lastSeq;
  await first.close(); // the process ends; its cursor stays in storage

  for (const progress of [10, 20]) await worker.call("progress", { ...fenced, progress });

  const second = new JobspineClient({ url: server.url, token, storage });
  try {
    const resumed = second.watch(job.id);
    const log = record(resumed);
    await waitFor(() => resumed.lastSeq === cursor, { what: "the stored state before connecting" });
    await second.connect();
    await resumed.ready;
    await waitFor(() => resumed.lastSeq === cursor + 2, { what: "the replay" });
    assert.deepEqual(log, [`event ${cursor + 1}`, `event ${cursor + 2}`]);
    resumed.close();
    await waitFor(() => saved.size === 0, { what: "close() to forget the cursor" });
  } finally {
    await second.close();
  }
});
