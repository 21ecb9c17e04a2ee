// The create form: type, input as JSON, and the v2 fields (priority, run_at, tags,
// parent_id, timeout_s, retry, idempotency_key). Empty optional fields are left out, so
// the server's defaults apply. Bad JSON is caught here; anything else the server refuses
// is shown in plain words.

import { h } from "./dom.js";
import { refusalText } from "./actions.js";

const EXAMPLE_TYPES = ["research", "trade", "analysis"];

/**
 * @param {import("./context.js").Context} ctx
 * @param {(job: any) => void} onCreated
 */
export function createForm(ctx, onCreated) {
  const feedback = h("p", { class: "refusal", role: "alert" });
  const done = h("p", { class: "note", role: "status", "aria-live": "polite" });

  /** @param {string} id @param {string} label @param {HTMLElement} control @param {string} [hint] */
  const field = (id, label, control, hint) =>
    h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", { id: `${id}-hint` }, hint) : null);
  /** @param {string} id @param {Record<string, unknown>} props */
  const input = (id, props) => h("input", { id, name: id.replace(/^create-/, ""), autocomplete: "off", ...props });

  const form = h(
    "form",
    { class: "create", "aria-labelledby": "create-title", novalidate: true, onsubmit: submit },
    h("h2", { id: "create-title" }, "Create a job"),
    h("div", { class: "grid" },
      field("create-type", "Type", input("create-type", { required: true, list: "create-types", value: "research", pattern: "[a-z0-9_.\\-]{1,64}" })),
      h("datalist", { id: "create-types" }, EXAMPLE_TYPES.map((t) => h("option", { value: t }))),
      field("create-priority", "Priority", input("create-priority", { type: "number", min: "-100", max: "100", step: "1", placeholder: "0" }), "-100 to 100; higher runs first"),
      field("create-tags", "Tags", input("create-tags", { type: "text", placeholder: "batch:7, nightly" }), "comma-separated"),
      field("create-run-at", "Run at", input("create-run-at", { type: "datetime-local" }), "not before this time (local)"),
      field("create-timeout", "Timeout (s)", input("create-timeout", { type: "number", min: "0", step: "any" }), "longest one attempt may run"),
      field("create-max-attempts", "Max attempts", input("create-max-attempts", { type: "number", min: "1", max: "20", step: "1", placeholder: "1" }), "automatic retries of retryable failures"),
      field("create-backoff", "Backoff (s)", input("create-backoff", { type: "number", min: "0", max: "3600", step: "any", placeholder: "5" })),
      field("create-parent", "Parent job id", input("create-parent", { type: "text" })),
      field("create-idempotency", "Idempotency key", input("create-idempotency", { type: "text" }), "the same key answers the same job"),
    ),
    field("create-input", "Input (JSON object)", h("textarea", { id: "create-input", name: "input", rows: "4", spellcheck: "false" }, '{"query": "solid-state batteries", "steps": 5, "step_seconds": 1}')),
    h("button", { type: "submit" }, "Create job"),
    feedback,
    done,
  );

  /** @param {string} id */
  function value(id) {
    const node = /** @type {HTMLInputElement | null} */ (form.querySelector(`#${id}`));
    return node ? node.value.trim() : "";
  }

  /** The create request, or a message saying what is wrong. @returns {{request?: any, problem?: string}} */
  function request() {
    /** @type {Record<string, unknown>} */
    const body = { type: value("create-type") };
    const raw = value("create-input") || "{}";
    try {
      body.input = JSON.parse(raw);
    } catch (error) {
      return { problem: `The input is not valid JSON: ${/** @type {Error} */ (error).message}` };
    }
    if (typeof body.input !== "object" || body.input === null || Array.isArray(body.input)) {
      return { problem: "The input must be a JSON object, such as {\"steps\": 5}." };
    }
    const number = (/** @type {string} */ id) => (value(id) === "" ? undefined : Number(value(id)));
    const priority = number("create-priority");
    if (priority !== undefined) body.priority = priority;
    const tags = value("create-tags").split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) body.tags = tags;
    const runAt = value("create-run-at");
    if (runAt) body.run_at = new Date(runAt).toISOString();
    const timeout = number("create-timeout");
    if (timeout !== undefined) body.timeout_s = timeout;
    const maxAttempts = number("create-max-attempts");
    const backoff = number("create-backoff");
    if (maxAttempts !== undefined || backoff !== undefined) {
      body.retry = { ...(maxAttempts !== undefined && { max_attempts: maxAttempts }), ...(backoff !== undefined && { backoff_s: backoff }) };
    }
    if (value("create-parent")) body.parent_id = value("create-parent");
    if (value("create-idempotency")) body.idempotency_key = value("create-idempotency");
    return { request: body };
  }

  /** @param {Event} event */
  async function submit(event) {
    event.preventDefault();
    feedback.textContent = "";
    done.textContent = "";
    const { request: body, problem } = request();
    if (problem) {
      feedback.textContent = problem;
      return;
    }
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
    button.disabled = true;
    try {
      const job = await ctx.client.create(body);
      onCreated(job);
      done.textContent = `Created ${job.type} ${job.id.slice(0, 8)}.`;
    } catch (error) {
      feedback.textContent = refusalText("Create", /** @type {any} */ (error));
    } finally {
      button.disabled = false;
    }
  }

  return form;
}
