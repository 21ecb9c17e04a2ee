// Live-test helpers: a real `python -m server` (killed and restarted on the same port),
// HS256 tokens, clients that record their statuses, a scripted worker on /workers, a TCP
// proxy that cuts a client off, and waiting on conditions with deadlines (never sleeping
// to synchronise).

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import net from "node:net";
import { once } from "node:events";
import { io } from "socket.io-client";

import { JobspineClient } from "../../dist/index.js";

export const SECRET = "client-js-live-secret-" + "x".repeat(32);
const ROOT = process.env.JOBSPINE_ROOT ?? new URL("../../../../", import.meta.url).pathname;
const PYTHON = process.env.JOBSPINE_PYTHON ?? `${ROOT}.venv/bin/python`;

function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** An HS256 JWT for `sub` valid for `ttlS` seconds (negative: already expired). */
export function mintToken(sub, { role = "user", ttlS = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = base64url({ alg: "HS256", typ: "JWT" });
  const body = base64url({ sub, role, iat: now, exp: now + ttlS });
  const signature = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/** An environment variable the test needs; tests/test_client_js.py sets them. */
/** A client (not connected yet) and every status it reports, in order. */
export function recordedClient(options) {
  const client = new JobspineClient(options);
  const statuses = [];
  client.on("status", (status) => statuses.push(status));
  return { client, statuses };
}

/** `use(client)` with a connected client of `sub` on `url`; the client is closed after. */
export async function withClient(url, sub, use) {
  const client = new JobspineClient({ url, token: mintToken(sub) });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

export function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through tests/test_client_js.py`);
  return value;
}

/** The snapshot's fields but the heartbeat time (heartbeats are not events). */
export function eventFields(job) {
  const { last_heartbeat_at: _ignored, ...rest } = job;
  return rest;
}

/** When a token minted here expires, in ms since the epoch. */
export function tokenExpMs(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()).exp * 1000;
}

/** Resolves once `predicate()` is truthy (checked on each `tick` and every 20 ms);
 * rejects after `withinMs` with `what` and the last value of `describe()`. */
export async function waitFor(predicate, { withinMs = 15000, what = "condition", describe = () => "" } = {}) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** `python -m server` on `port` with `env`; `kill()` is SIGKILL, `start()` again reuses the port. */
export class ServerProcess {
  constructor(port, env = {}) {
    this.port = port;
    this.env = env;
    this.url = `http://127.0.0.1:${port}`;
    this.child = null;
    this.output = "";
  }

  async start() {
    const env = {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(this.port),
      JWT_SECRET: SECRET,
      USER_CALLS_PER_S: "1000000",
      WORKER_CALLS_PER_S: "1000000",
      MAX_SOCKETS_PER_USER: "100000",
      PYTHONUNBUFFERED: "1",
      ...this.env,
    };
    const child = spawn(PYTHON, ["-m", "server"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const collect = (chunk) => {
      this.output += chunk.toString();
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited early:\n${this.output}`);
        try {
          const response = await fetch(`${this.url}/readyz`);
          return response.status === 200;
        } catch {
          return false;
        }
      },
      { withinMs: 30000, what: "the server to be ready", describe: () => this.output },
    );
    return this;
  }

  /** SIGKILL, and wait for the process to be gone. */
  async kill(signal = "SIGKILL") {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  }

  async stop() {
    await this.kill("SIGTERM");
  }

  async rest(method, path, { token, body } = {}) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text === "" ? null : JSON.parse(text) };
  }
}

/** A scripted worker on /workers: each call resolves with its ack (`ok` checked). */
export class ScriptedWorker {
  constructor(url, sub = "worker-js") {
    this.socket = io(`${url}/workers`, {
      auth: (send) => send({ token: mintToken(sub, { role: "worker" }) }),
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      forceNew: true,
    });
  }

  async ready() {
    await waitFor(() => this.socket.connected, { what: "the worker to connect" });
  }

  async call(event, payload) {
    await this.ready();
    const ack = await this.socket.timeout(10000).emitWithAck(event, payload);
    if (!ack || ack.ok !== true) throw new Error(`${event} refused: ${JSON.stringify(ack)}`);
    return ack;
  }

  close() {
    this.socket.close();
  }
}

/** A TCP proxy in front of the server: `cut()` drops every connection and refuses new
 * ones (a network loss for the client behind it), `restore()` lets them through again. */
export class CuttableProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.open = true;
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen() {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  accept(client) {
    if (!this.open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  cut() {
    this.open = false;
    for (const socket of this.sockets) socket.destroy();
  }

  restore() {
    this.open = true;
  }

  async close() {
    this.cut();
    this.server.close();
  }
}
