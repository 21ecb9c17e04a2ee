// Drives a live jobspine server with the official socket.io-client; one JSON object per
// stdout line, so the Python test can read them as they come.
//
//   node client.mjs refused URL TOKEN
//       connect (TOKEN "-" sends no auth); print {"connect_error": {message, data}}
//   node client.mjs watch URL TOKEN JOB_ID TRANSPORTS
//       connect, emit job:subscribe {job_id} and print {"ack": …}, then print the first
//       job:progress event as {"event": …}; TRANSPORTS is e.g. "polling,websocket"
//   node client.mjs calls URL TOKEN < calls.json
//       connect, make each call [event, ...args] of the JSON array on stdin in turn, and
//       print {"acks": […], "connected": bool}; a "$lease" or "$job_id" string in an
//       argument stands for the lease / job id of the latest ack that had one
//
// Exit status: 0 when the expected thing happened, 1 otherwise; 2 on a timeout.

import { io } from "socket.io-client";

const TIMEOUT_MS = 15000;
const [mode, url, token, jobId, transports] = process.argv.slice(2);

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

let done = false;
function finish(socket, status) {
  if (done) return;
  done = true;
  clearTimeout(timer);
  socket.close();
  // Exit once stdout is flushed: a closed polling transport may keep a request open.
  process.stdout.write("", () => process.exit(status));
}

const options = { reconnection: false, timeout: TIMEOUT_MS };
if (token !== "-") options.auth = { token };
if (transports) options.transports = transports.split(",");
const socket = io(url, options);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function substitute(value, known) {
  if (typeof value === "string" && value in known) return known[value];
  if (Array.isArray(value)) return value.map((v) => substitute(v, known));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, known)]));
  }
  return value;
}

const timer = setTimeout(() => {
  emit({ timeout: mode });
  finish(socket, 2);
}, TIMEOUT_MS);

if (mode === "refused") {
  socket.on("connect_error", (err) => {
    emit({ connect_error: { message: err.message, data: err.data ?? null } });
    finish(socket, 0);
  });
  socket.on("connect", () => {
    emit({ connected: true });
    finish(socket, 1);
  });
} else if (mode === "watch") {
  socket.on("connect_error", (err) => {
    emit({ connect_error: { message: err.message, data: err.data ?? null } });
    finish(socket, 1);
  });
  socket.on("disconnect", (reason) => {
    if (done) return;
    emit({ disconnect: reason });
    finish(socket, 1);
  });
  socket.on("job:progress", (event) => {
    emit({ event, transport: socket.io.engine.transport.name });
    finish(socket, 0);
  });
  socket.on("connect", async () => {
    const ack = await socket.timeout(TIMEOUT_MS).emitWithAck("job:subscribe", { job_id: jobId });
    emit({ ack });
  });
} else if (mode === "calls") {
  socket.on("connect_error", (err) => {
    emit({ connect_error: { message: err.message, data: err.data ?? null } });
    finish(socket, 1);
  });
  socket.on("connect", async () => {
    const calls = JSON.parse(await readStdin());
    const acks = [];
    const known = {};
    for (const [event, ...args] of calls) {
      const ack = await socket.timeout(TIMEOUT_MS).emitWithAck(event, ...substitute(args, known));
      if (ack && ack.lease) known.$lease = ack.lease;
      if (ack && ack.job && ack.job.id) known.$job_id = ack.job.id;
      acks.push(ack);
    }
    emit({ acks, connected: socket.connected });
    finish(socket, 0);
  });
} else {
  emit({ usage: "node client.mjs refused|watch|calls URL TOKEN [JOB_ID TRANSPORTS]" });
  finish(socket, 1);
}
