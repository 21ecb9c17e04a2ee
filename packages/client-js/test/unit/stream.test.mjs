import assert from "node:assert/strict";
import { test } from "node:test";

import { JobStream } from "../../dist/index.js";
import { EPOCH, JOB_ID, event, snapshot } from "../support/jobs.mjs";

const seqs = (outcome) => outcome.steps.map((step) => step.event.seq);

test("live events apply in seq order once; duplicates are dropped", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 2 }));
  assert.deepEqual(seqs(stream.live(event(3))), [3]);
  assert.deepEqual(seqs(stream.live(event(3))), []);
  assert.deepEqual(seqs(stream.live(event(2))), []);
  assert.equal(stream.job.seq, 3);
  assert.equal(stream.job.progress, 3);
});

test("a gap holds later events until an answer fills it, then they apply", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 2 }));
  const held = stream.live(event(5));
  assert.equal(held.resync, true);
  assert.deepEqual(seqs(held), []);
  assert.equal(stream.live(event(5)).steps.length, 0); // a duplicate of a held event
  const answer = stream.answer({ recovered: true, events: [event(3), event(4)], job: snapshot({ seq: 4 }) });
  assert.deepEqual(seqs(answer), [3, 4, 5]);
  assert.equal(answer.reset, false);
  assert.equal(answer.resync, false);
  assert.equal(stream.job.seq, 5);
});

test("a live event that closes the gap itself drains the held ones", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 2 }));
  stream.live(event(4));
  const outcome = stream.live(event(3));
  assert.deepEqual(seqs(outcome), [3, 4]);
  assert.equal(outcome.resync, false);
});

test("recovered false replaces the state with the snapshot: a reset", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 2 }));
  const outcome = stream.answer({ recovered: false, events: [], job: snapshot({ seq: 300, progress: 90 }) });
  assert.equal(outcome.reset, true);
  assert.deepEqual(outcome.steps, []);
  assert.equal(stream.job.seq, 300);
  assert.deepEqual(stream.cursor(), { after_seq: 300, epoch: EPOCH });
});

test("another epoch is held, and the answer's snapshot of that epoch resets", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 7 }));
  const outcome = stream.live(event(2, "job:progress", { progress: 1 }, { epoch: "new" }));
  assert.equal(outcome.resync, true);
  const answer = stream.answer({ recovered: false, events: [], job: snapshot({ seq: 1, epoch: "new" }) });
  assert.equal(answer.reset, true);
  assert.deepEqual(seqs(answer), [2]); // the held event continues the new stream
  assert.equal(stream.job.epoch, "new");
});

test("the first answer is no reset; events before it are held", () => {
  const stream = new JobStream(JOB_ID);
  assert.equal(stream.cursor(), null);
  assert.equal(stream.live(event(3)).resync, true);
  const outcome = stream.answer({ recovered: false, events: [], job: snapshot({ seq: 2 }) });
  assert.equal(outcome.reset, false);
  assert.deepEqual(seqs(outcome), [3]);
});

test("a replayed snapshot at the same seq is adopted (fields events do not carry)", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 2 }));
  const fresh = snapshot({ seq: 3, progress: 42, step: "held report", last_heartbeat_at: "2026-12-04T10:01:00Z" });
  stream.answer({ recovered: true, events: [event(3)], job: fresh });
  assert.deepEqual(stream.job, fresh);
});

test("adopt takes only a newer snapshot", () => {
  const stream = new JobStream(JOB_ID, snapshot({ seq: 5 }));
  assert.equal(stream.adopt(snapshot({ seq: 4 })).reset, false);
  assert.equal(stream.job.seq, 5);
  assert.equal(stream.adopt(snapshot({ seq: 9 })).reset, true);
  assert.equal(stream.job.seq, 9);
});
