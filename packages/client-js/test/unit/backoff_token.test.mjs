import assert from "node:assert/strict";
import { test } from "node:test";

import { BACKOFF, Backoff, refreshDelayMs, tokenExp } from "../../dist/index.js";

test("backoff doubles up to the cap, each delay within ±50 % jitter", () => {
  for (const random of [0, 0.5, 0.999]) {
    const backoff = new Backoff(() => random);
    let plain = BACKOFF.baseMs;
    for (let i = 0; i < 10; i += 1) {
      const delay = backoff.next();
      assert.ok(delay >= plain * 0.5 && delay <= plain * 1.5, `${delay} for ${plain}`);
      plain = Math.min(BACKOFF.maxMs, plain * 2);
    }
  }
  const backoff = new Backoff(() => 0.5);
  backoff.next();
  backoff.next();
  backoff.reset();
  assert.equal(backoff.next(), BACKOFF.baseMs);
});

test("jitter spreads clients that retry together", () => {
  const delays = new Set(Array.from({ length: 20 }, () => new Backoff().next()));
  assert.ok(delays.size > 1);
});

function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part(claims)}.sig`;
}

test("tokenExp reads exp; not a JWT gives null", () => {
  assert.equal(tokenExp(jwt({ sub: "ü", exp: 1700000000 })), 1700000000);
  assert.equal(tokenExp(jwt({ sub: "u1" })), null);
  assert.equal(tokenExp("opaque"), null);
  assert.equal(tokenExp("a.%%%.c"), null);
});

test("a refresh comes a fifth of the time left before exp, between 1 s and 60 s early", () => {
  const now = 1_000_000_000_000;
  assert.equal(refreshDelayMs(now / 1000 + 3600, now), 3600_000 - 60_000);
  assert.equal(refreshDelayMs(now / 1000 + 100, now), 80_000);
  assert.equal(refreshDelayMs(now / 1000 + 2, now), 1_000);
  assert.equal(refreshDelayMs(now / 1000 - 5, now), 0);
});
