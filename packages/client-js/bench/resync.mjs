// How long a cut-off client takes to be live again: N watched jobs, the network restored,
// then ONE job:sync with N cursors, N job:subscribe, status live. Memory store, one server.
//
//   node packages/client-js/bench/resync.mjs [--jobs 200] [--rounds 7] [--missed 3]
//
// Each round: cut the proxy, make `missed` progress events on every job, restore; times from
// the socket's new connection to `live` with every watch at its latest seq (the resync), and
// from the restore (which adds the wait for the next backoff try). Prints each round and the
// median and range in ms. Bounded: rounds and jobs are counts, each wait has a deadline.
import { parseArgs } from "node:util";

import { JobspineClient } from "../dist/index.js";
import { CuttableProxy, ScriptedWorker, ServerProcess, freePort, mintToken, waitFor } from "../test/support/live.mjs";

const { values } = parseArgs({
  options: { jobs: { type: "string", default: "200" }, rounds: { type: "string", default: "7" }, missed: { type: "string", default: "3" } },
});
const jobs = Number(values.jobs);
const rounds = Number(values.rounds);
const missed = Number(values.missed);

const server = await new ServerProcess(await freePort(), { PROGRESS_EVENTS_PER_S: "0", MAX_ACTIVE_JOBS_PER_USER: "100000" }).start();
const proxy = await new CuttableProxy(server.port).listen();
const worker = new ScriptedWorker(server.url);
const client = new JobspineClient({ url: proxy.url, token: mintToken("bench-user") });
try {
  await client.connect();
  const running = [];
  for (let i = 0; i < jobs; i += 1) {
    const job = await client.create({ type: "bench" });
    const { lease } = await worker.call("claim", { types: ["bench"] });
    running.push({ job, fenced: { job_id: job.id, lease }, watch: client.watch(job.id), progress: 0 });
  }
  await Promise.all(running.map((r) => r.watch.ready));
  const times = [];
  const fromRestore = [];
  const socket = client["socket"]; // the client's own socket.io-client Socket, to time its connect
  for (let round = 1; round <= rounds; round += 1) {
    proxy.cut();
    await waitFor(() => client.status === "reconnecting", { what: "the cut" });
    for (const r of running) {
      for (let k = 0; k < missed; k += 1) {
        r.progress += 0.01;
        await worker.call("progress", { ...r.fenced, progress: r.progress });
      }
    }
    const latest = running.map((r) => r.watch.lastSeq + missed);
    let connectedAt = null;
    socket.once("connect", () => {
      connectedAt = performance.now();
    });
    const start = performance.now();
    proxy.restore();
    await waitFor(() => client.status === "live" && running.every((r, i) => r.watch.lastSeq === latest[i]), {
      what: "live and caught up",
      withinMs: 60000,
    });
    const end = performance.now();
    times.push(end - connectedAt);
    fromRestore.push(end - start);
    console.log(`round ${round}: connect->live ${(end - connectedAt).toFixed(1)} ms, restore->live ${(end - start).toFixed(1)} ms`);
  }
  const summary = (name, values) => {
    values.sort((a, b) => a - b);
    const median = values[Math.floor(values.length / 2)];
    console.log(`${name}: median ${median.toFixed(1)} ms, range ${values[0].toFixed(1)}..${values.at(-1).toFixed(1)} ms`);
  };
  console.log(`${jobs} watched jobs, ${missed} missed events each, ${rounds} rounds`);
  summary("connect -> live (one job:sync, a job:subscribe per watch)", times);
  summary("restore -> live (plus the backoff wait)", fromRestore);
} finally {
  await client.close();
  worker.close();
  await proxy.close();
  await server.stop();
}
