// The job view (#/jobs/<id>): state, progress, step, attempt, retries; the actions; the
// recovery panel when the supervisor paused it; the failure and what can be done; the
// timeline (replayed over REST, then live through watch()); the checkpoint inspector; the
// audit trail.

import { h, fill } from "./dom.js";
import { when, size, percent, pretty } from "./format.js";
import { progressBar, stateBadge, alertLine } from "./widgets.js";
import { actionBar, refusalLine } from "./actions.js";
import { eventSummary, failureAdvice } from "./explain.js";

/** The timeline shows the latest this many events (a long job has thousands). */
const TIMELINE_SHOWN = 500;

/** Events after which recovery options, checkpoint and audit trail are read again. */
const REREAD_ON = new Set([
  "job:started", "job:checkpoint", "job:paused", "job:recovery", "job:resumed", "job:completed",
  "job:failed", "job:cancelled", "job:restarted", "job:retrying", "job:pause_requested",
]);

/**
 * @param {import("./context.js").Context} ctx
 * @param {HTMLElement} container
 * @param {string} id
 * @returns {import("./context.js").View}
 */
export function mountJobView(ctx, container, id) {
  /** @type {Map<number, any>} the timeline by seq */
  const timeline = new Map();
  /** @type {any} */
  let job = null;
  /** @type {any} */
  let recovery = null;
  /** @type {any} */
  let checkpoint = null;
  /** @type {any[]} */
  let audit = [];
  let closed = false;

  const title = h("h2", { id: "job-title" }, "Job");
  const facts = h("div", { class: "facts-wrap" });
  const failure = h("div");
  const panel = h("div");
  const actions = h("div");
  const events = h("ol", { class: "timeline", "aria-label": "Events, oldest first" });
  const inspector = h("pre", { class: "checkpoint-json", tabindex: "0", "aria-label": "Checkpoint JSON" });
  const inspectorNote = h("p");
  const auditBody = h("tbody");
  const problem = h("div");
  const refusal = refusalLine();

  fill(
    container,
    h(
      "article",
      { class: "job-view", "aria-labelledby": "job-title" },
      h("p", null, h("a", { href: "#/" }, "← All jobs")),
      title,
      problem,
      failure,
      panel,
      actions,
      refusal,
      facts,
      h("section", { "aria-labelledby": "timeline-title" }, h("h3", { id: "timeline-title" }, "Timeline"), events),
      h(
        "section",
        { "aria-labelledby": "checkpoint-title" },
        h("h3", { id: "checkpoint-title" }, "Checkpoint"),
        inspectorNote,
        inspector,
      ),
      h(
        "section",
        { "aria-labelledby": "audit-title" },
        h("h3", { id: "audit-title" }, "Audit trail"),
        h("div", { class: "table-wrap" },
          h("table", { class: "audit", "aria-labelledby": "audit-title" },
            h("thead", null, h("tr", null, ["Action", "By", "When", "Details"].map((c) => h("th", { scope: "col" }, c)))),
            auditBody,
          ),
        ),
      ),
    ),
  );

  /** Paused by the supervisor: the latest job:paused event says "stalled". */
  function pausedBySupervisor() {
    if (job?.state !== "paused") return false;
    const paused = [...timeline.values()].filter((e) => e.type === "job:paused").at(-1);
    return paused ? paused.data?.reason === "stalled" : job.recovery_attempts > 0;
  }

  function renderFacts() {
    if (job === null) return;
    fill(title, `${job.type} `, h("span", { class: "id" }, job.id));
    /** @type {[string, unknown][]} */
    const rows = [
      ["State", h("span", { id: "job-state" }, stateBadge(job.state))],
      ["Progress", progressBar(job.progress, "Progress")],
      ["Step", job.step ?? "—"],
      ["Attempt", String(job.attempt)],
      ["Retries", `${job.retries ?? 0} of ${(job.retry?.max_attempts ?? 1) - 1}`],
      ["Recoveries", String(job.recovery_attempts)],
      ["Owner", job.user_id],
      ["Priority", String(job.priority ?? 0)],
      ["Tags", (job.tags ?? []).join(", ") || "—"],
      ["Created", h("time", { datetime: job.created_at }, when(job.created_at))],
      ["Updated", h("time", { datetime: job.updated_at }, when(job.updated_at))],
    ];
    if (job.run_at) rows.push(["Runs at", h("time", { datetime: job.run_at }, when(job.run_at))]);
    if (job.state === "completed") rows.push(["Result", h("code", null, JSON.stringify(job.result))]);
    fill(facts, h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])));
  }

  function renderFailure() {
    if (job?.state !== "failed" || !job.error) return void fill(failure);
    fill(
      failure,
      h("section", { class: "failure", role: "alert", "aria-labelledby": "failure-title" },
        h("h3", { id: "failure-title" }, "Failed: ", h("code", null, job.error.code)),
        h("p", null, job.error.message),
        h("p", null, h("strong", null, "What you can do: "), failureAdvice(job.error)),
      ),
    );
  }

  let actionsKey = "";

  /** Re-built only when what they show changes, so focus and a refusal's words stay. */
  function renderActions() {
    if (job === null) return;
    const cp = recovery?.checkpoint;
    const key = JSON.stringify([job.state, job.pause_requested, pausedBySupervisor(), recovery?.recovery_attempts, cp?.saved_at, cp?.present]);
    if (key === actionsKey) return;
    actionsKey = key;
    const bar = actionBar({ table: ctx.table, client: ctx.client, api: ctx.api, job, feedback: refusal, onDone: done });
    if (pausedBySupervisor()) {
      fill(actions);
      fill(panel, recoveryPanel(bar));
    } else {
      fill(panel);
      fill(actions, bar);
    }
  }

  /** @param {string} name */
  function done(name) {
    if (name === "Delete") location.hash = "#/";
  }

  /** @param {HTMLElement} bar */
  function recoveryPanel(bar) {
    const cp = recovery?.checkpoint;
    const left = recovery ? recovery.max_recovery_attempts - recovery.recovery_attempts : null;
    return h(
      "section",
      { class: "recovery", role: "region", "aria-labelledby": "recovery-title" },
      h("h3", { id: "recovery-title" }, "Recovery"),
      h("p", null, "Reason: ", h("strong", null, "stalled"), " — the supervisor paused this job because its worker stopped sending heartbeats."),
      cp && cp.present
        ? h("dl", { class: "facts checkpoint-summary" },
            h("dt", null, "Checkpoint keys"), h("dd", null, (cp.keys ?? []).join(", ") || "—"),
            h("dt", null, "Size"), h("dd", null, size(cp.size_bytes)),
            h("dt", null, "Saved at"), h("dd", null, h("time", { datetime: cp.saved_at }, when(cp.saved_at))),
            h("dt", null, "Progress saved"), h("dd", null, cp.progress === null || cp.progress === undefined ? "—" : percent(cp.progress)),
          )
        : h("p", null, "No checkpoint: resuming starts it over."),
      left === null ? null : h("p", { class: "attempts-left" }, `Recovery attempts left: ${left} of ${recovery.max_recovery_attempts}`),
      h("p", null, recovery?.resumable ? "Resume puts it back in the queue; a worker continues from the checkpoint." : ""),
      bar,
    );
  }

  function renderTimeline() {
    const ordered = [...timeline.values()].sort((a, b) => a.seq - b.seq);
    const hidden = Math.max(0, ordered.length - TIMELINE_SHOWN);
    fill(
      events,
      hidden ? h("li", { class: "note" }, `${hidden} earlier events not shown`) : null,
      ordered.slice(hidden).map((e) =>
        h("li", { "data-seq": String(e.seq), "data-type": e.type },
          h("span", { class: "seq" }, `#${e.seq}`), " ",
          h("time", { datetime: e.at }, new Date(e.at).toLocaleTimeString()), " ",
          h("span", { class: "etype" }, e.type.replace("job:", "")), " ",
          eventSummary(e),
        ),
      ),
    );
  }

  function renderCheckpoint() {
    if (checkpoint === null) {
      inspectorNote.textContent = job?.has_checkpoint ? "Loading…" : "No checkpoint saved.";
      inspector.textContent = "";
      return;
    }
    inspectorNote.textContent = `Saved ${when(checkpoint.saved_at)}, ${size(checkpoint.size_bytes)}${checkpoint.progress !== null && checkpoint.progress !== undefined ? `, at ${percent(checkpoint.progress)}` : ""}.`;
    inspector.textContent = pretty(checkpoint.data);
  }

  function renderAudit() {
    fill(
      auditBody,
      audit.length === 0
        ? h("tr", null, h("td", { colspan: "4" }, "Nobody paused, resumed, cancelled or restarted it yet."))
        : audit.map((a) =>
            h("tr", null,
              h("td", { "data-label": "Action" }, a.action),
              h("td", { "data-label": "By" }, a.actor),
              h("td", { "data-label": "When" }, h("time", { datetime: a.at }, when(a.at))),
              h("td", { "data-label": "Details" }, h("code", null, JSON.stringify(a.details ?? {}))),
            ),
          ),
    );
  }

  function render() {
    renderFacts();
    renderFailure();
    renderActions();
  }

  async function reread() {
    try {
      const [options, saved, trail] = await Promise.all([
        ctx.api.recovery(id),
        ctx.api.checkpoint(id),
        ctx.api.audit(id),
      ]);
      if (closed) return;
      recovery = options;
      checkpoint = saved;
      audit = trail.items;
      render();
      renderCheckpoint();
      renderAudit();
    } catch (error) {
      if (!closed) fill(problem, alertLine(`Some details could not be loaded: ${/** @type {any} */ (error).message}`));
    }
  }

  async function replay() {
    try {
      const answer = await ctx.api.events(id);
      if (closed) return;
      for (const e of answer.events) timeline.set(e.seq, e);
      renderTimeline();
      render();
    } catch {
      // the live part still works; a later reset reads it again
    }
  }

  const watch = ctx.client.watch(id);
  watch.on("event", (/** @type {any} */ e) => {
    timeline.set(e.seq, e);
    renderTimeline();
    if (REREAD_ON.has(e.type)) void reread();
  });
  watch.on("change", (/** @type {any} */ changed) => {
    job = changed;
    fill(problem);
    render();
  });
  watch.on("reset", (/** @type {any} */ changed) => {
    job = changed;
    render();
    void replay();
    void reread();
  });
  Promise.resolve(watch.ready).then(
    () => {
      if (closed) return;
      job = watch.job;
      render();
      void replay();
      void reread();
    },
    (/** @type {any} */ error) => {
      if (closed) return;
      const text = error?.code === "not_found" ? "This job does not exist, or you may not see it." : `This job could not be loaded: ${error?.message ?? error}`;
      fill(problem, alertLine(text));
    },
  );

  return {
    refresh: () => {
      void replay();
      void reread();
    },
    destroy: () => {
      closed = true;
      watch.close();
    },
  };
}
