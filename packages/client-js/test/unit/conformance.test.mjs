// The conformance suite, JS side: applyEvent folds the event streams recorded from a real
// server on both stores (tests/conformance/fixtures/*.json) and, after every step, the
// snapshot fields those events determine equal the server's snapshot. Which fields an
// event determines is declared once, by the Python fold (jobspine_client.fold
// FOLDED_FIELDS); tests/test_client_js.py hands it over in JOBSPINE_FOLDED_FIELDS.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { applyEvent } from "../../dist/index.js";

const FIXTURES = new URL("../../../../tests/conformance/fixtures/", import.meta.url);
const declared = process.env.JOBSPINE_FOLDED_FIELDS;
const stores = readdirSync(FIXTURES).filter((name) => name.endsWith(".json"));

/** The job after the step's events, and the snapshot fields they determine. */
function foldStep(job, step, folded) {
  const fields = new Set();
  for (const event of step.events) {
    if (job === null) {
      assert.equal(event.type, "job:created", "a stream starts with job:created");
      job = { ...event.data.job, seq: event.seq, epoch: event.epoch };
    } else {
      assert.equal(event.seq, job.seq + 1, "recorded streams have no gaps");
      job = applyEvent(job, event);
    }
    for (const field of folded.always) fields.add(field);
    for (const field of folded.by_type[event.type] ?? []) fields.add(field);
  }
  return { job, fields };
}

test("the fixtures of both stores are there", () => {
  assert.deepEqual(stores.sort(), ["memory.json", "postgres.json"]);
});

for (const store of stores) {
  const skip = declared ? false : "run by tests/test_client_js.py (it sets JOBSPINE_FOLDED_FIELDS)";
  test(`the fold matches the server after every step (${store})`, { skip }, () => {
    const folded = JSON.parse(declared);
    const document = JSON.parse(readFileSync(new URL(store, FIXTURES), "utf8"));
    const types = new Set();
    let compared = 0;
    for (const stream of document.streams) {
      let job = null;
      stream.steps.forEach((step, number) => {
        let fields;
        ({ job, fields } = foldStep(job, step, folded));
        for (const event of step.events) types.add(event.type);
        const names = fields.has("*") ? Object.keys(step.snapshot) : [...fields].sort();
        const wrong = names.filter((name) => JSON.stringify(job[name]) !== JSON.stringify(step.snapshot[name]));
        assert.deepEqual(
          Object.fromEntries(wrong.map((name) => [name, [job[name], step.snapshot[name]]])),
          {},
          `${stream.name} step ${number} (${step.action})`,
        );
        compared += names.length;
      });
    }
    assert.deepEqual([...types].sort(), Object.keys(folded.by_type).sort(), "every event type is covered");
    assert.ok(compared > 100, `only ${compared} fields compared`);
  });
}
