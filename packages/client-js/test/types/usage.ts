// Compiled (never run) by tests/test_client_js.py with tsc --strict against dist/*.d.ts:
// the published types let an app write the README's code, and narrow events by type.
import { JobspineClient, JobspineError, type Job, type Status } from "../../dist/index.js";

export async function usage(): Promise<void> {
  const client = new JobspineClient({ url: "http://127.0.0.1:8080", token: async () => "jwt", storage: localStorage });
  client.on("status", (status: Status) => console.log(status));
  await client.connect();
  const job: Job = await client.create({ type: "research", input: { q: 1 }, priority: 5, retry: { max_attempts: 3 } });
  const watch = client.watch(job.id);
  const off = watch.on("event", (event) => {
    if (event.type === "job:progress") {
      const progress: number = event.data.progress;
      console.log(progress, event.data.step);
    } else if (event.type === "job:failed") {
      const code: string = event.data.error.code;
      console.log(code);
    }
  });
  off();
  watch.on("change", (changed: Job) => console.log(changed.state, watch.lastSeq, watch.epoch));
  watch.on("reset", (snapshot) => console.log(snapshot.seq));
  const ready: Job = await watch.ready;
  const mine = client.watchUser();
  const jobs: Map<string, Job> = mine.jobs;
  mine.on("change", (changed) => console.log(changed.id, jobs.size));
  const page = await client.list({ state: "running", limit: 10 });
  const next: string | null = page.next_cursor;
  await client.restart(ready.id, { again: true });
  try {
    await client.pause(ready.id);
  } catch (error) {
    if (error instanceof JobspineError) console.log(error.code, error.message, error.details, next);
  }
  watch.close();
  await client.close();
}
