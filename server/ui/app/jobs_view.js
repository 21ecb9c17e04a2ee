// The jobs view (#/): the user's jobs (an admin's: everyone's, with a user filter), newest
// first, paged, live through the client's watchUser(); filters by state and tag; the create
// form. Rows of other users' jobs (admins only) are followed with watch(id).

import { h, fill } from "./dom.js";
import { age } from "./format.js";
import { progressBar, stateBadge, alertLine } from "./widgets.js";
import { createForm } from "./create_form.js";

const PAGE_SIZE = 20;

/**
 * @param {import("./context.js").Context} ctx
 * @param {HTMLElement} container
 * @returns {import("./context.js").View}
 */
export function mountJobsView(ctx, container) {
  const admin = ctx.session.role === "admin";
  /** @type {{state: string, tag: string, user_id: string}} */
  const filters = { state: "", tag: "", user_id: "" };
  /** cursors of the pages before this one; the current one */
  /** @type {(string | null)[]} */
  let previous = [];
  /** @type {string | null} */
  let cursor = null;
  /** @type {string | null} */
  let nextCursor = null;
  /** @type {Map<string, any>} */
  const rows = new Map();
  /** @type {Map<string, any>} watches of other users' jobs */
  const watches = new Map();
  let generation = 0;
  /** Jobs heard of live while the newest page request was on its way (null: none is): its
   * answer may have been read before they were created. @type {Map<string, any> | null} */
  let heard = null;
  /** every job of this user, live (the client's watchUser) */
  const mine = ctx.client.watchUser();

  const body = h("tbody");
  const notice = h("div", { class: "notice" });
  const older = h("button", { type: "button", onclick: () => go(nextCursor, "older") }, "Older");
  const newer = h("button", { type: "button", onclick: () => go(previous.at(-1) ?? null, "newer") }, "Newer");
  const pageLabel = h("span", { class: "page-label" });

  const stateSelect = h(
    "select",
    { id: "filter-state", name: "state" },
    h("option", { value: "" }, "any state"),
    ctx.table.states.map((/** @type {string} */ s) => h("option", { value: s }, s)),
  );
  const tagInput = h("input", { id: "filter-tag", name: "tag", type: "text", placeholder: "tag", autocomplete: "off" });
  const userInput = admin
    ? h("input", { id: "filter-user", name: "user_id", type: "text", placeholder: "user id", autocomplete: "off" })
    : null;
  const filterForm = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter jobs",
      onsubmit: (/** @type {Event} */ event) => {
        event.preventDefault();
        filters.state = /** @type {HTMLSelectElement} */ (stateSelect).value;
        filters.tag = /** @type {HTMLInputElement} */ (tagInput).value.trim();
        filters.user_id = userInput ? /** @type {HTMLInputElement} */ (userInput).value.trim() : "";
        previous = [];
        void load(null);
      },
    },
    h("label", { for: "filter-state" }, "State"),
    stateSelect,
    h("label", { for: "filter-tag" }, "Tag"),
    tagInput,
    userInput ? [h("label", { for: "filter-user" }, "User"), userInput] : null,
    h("button", { type: "submit" }, "Filter"),
  );

  const columns = ["Type", "State", "Progress", "Step", "Age", ...(admin ? ["User"] : [])];
  const table = h(
    "table",
    { class: "jobs", "aria-labelledby": "jobs-title" },
    h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c)))),
    body,
  );

  fill(
    container,
    h(
      "section",
      { class: "jobs-view" },
      h("h2", { id: "jobs-title" }, admin ? "All jobs" : "Your jobs"),
      filterForm,
      notice,
      h("div", { class: "table-wrap" }, table),
      h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older),
      createForm(ctx, (job) => upsert(job, true)),
    ),
  );

  /** @param {any} job */
  function matches(job) {
    if (filters.state && job.state !== filters.state) return false;
    if (filters.tag && !(job.tags ?? []).includes(filters.tag)) return false;
    if (filters.user_id && job.user_id !== filters.user_id) return false;
    return true;
  }

  /** @param {any} job */
  function row(job) {
    const link = h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.type);
    const cells = [
      h("td", { "data-label": "Type" }, link, h("span", { class: "id" }, job.id.slice(0, 8))),
      h("td", { "data-label": "State" }, stateBadge(job.state)),
      h("td", { "data-label": "Progress" }, progressBar(job.progress, `Progress of ${job.type} ${job.id.slice(0, 8)}`)),
      h("td", { "data-label": "Step", class: "step" }, job.step ?? ""),
      h("td", { "data-label": "Age" }, h("time", { datetime: job.created_at, title: job.created_at }, age(job.created_at))),
    ];
    if (admin) cells.push(h("td", { "data-label": "User" }, job.user_id));
    return cells;
  }

  /** A job's row, updated in place, or added at the top when new. @param {any} job @param {boolean} fresh */
  function upsert(job, fresh) {
    if (!job || typeof job.id !== "string") return;
    const existing = rows.get(job.id);
    if (existing) {
      if (job.seq < existing.job.seq) return;
      existing.job = job;
      fill(existing.tr, row(job));
      return;
    }
    if (!fresh || cursor !== null || !matches(job) || !newest(job)) return;
    const tr = h("tr", { "data-job-id": job.id, "data-state": job.state }, row(job));
    rows.set(job.id, { job, tr });
    body.prepend(tr);
    follow(job);
    emptyNotice();
  }

  /** Whether `job` belongs at the top of the first page: no row was created after it (the
   * user's older jobs that watchUser() also knows stay on their own pages). @param {any} job */
  function newest(job) {
    const created = Date.parse(job.created_at);
    for (const { job: shown } of rows.values()) if (Date.parse(shown.created_at) > created) return false;
    return true;
  }

  /** Admins follow other users' rows one by one (watchUser covers the admin's own). @param {any} job */
  function follow(job) {
    if (!admin || job.user_id === ctx.session.sub || watches.has(job.id)) return;
    const watch = ctx.client.watch(job.id);
    watch.on("change", (/** @type {any} */ changed) => upsert(changed, false));
    watch.on("reset", (/** @type {any} */ changed) => upsert(changed, false));
    watches.set(job.id, watch);
  }

  function unfollowAll() {
    for (const watch of watches.values()) watch.close();
    watches.clear();
  }

  function emptyNotice() {
    if (rows.size === 0) fill(notice, h("p", null, "No jobs here yet. Create one below."));
    else fill(notice);
  }

  /** @param {string | null} target @param {"older" | "newer" | "same"} direction */
  function go(target, direction) {
    if (direction === "older") previous.push(cursor);
    if (direction === "newer") previous.pop();
    void load(target);
  }

  /** @param {string | null} target */
  async function load(target) {
    const ticket = ++generation;
    const arrivals = new Map();
    heard = arrivals;
    try {
      const page = await ctx.api.listJobs({
        limit: PAGE_SIZE,
        cursor: target ?? undefined,
        state: filters.state || undefined,
        tag: filters.tag || undefined,
        user_id: filters.user_id || undefined,
      });
      if (ticket !== generation) return;
      cursor = target;
      nextCursor = page.next_cursor;
      unfollowAll();
      rows.clear();
      body.replaceChildren();
      for (const job of page.items) {
        const tr = h("tr", { "data-job-id": job.id, "data-state": job.state }, row(job));
        rows.set(job.id, { job, tr });
        body.appendChild(tr);
        const live = mine.jobs.get(job.id);
        if (live) upsert(live, false);
        follow(job);
      }
      // A job created while the page was on its way is not in it: on top when newest
      // (oldest first, so each one goes above the one before).
      heard = null;
      const missing = [...arrivals.values()].filter((job) => !rows.has(job.id));
      missing.sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
      for (const job of missing) upsert(mine.jobs.get(job.id) ?? job, true);
      /** @type {HTMLButtonElement} */ (older).disabled = nextCursor === null;
      /** @type {HTMLButtonElement} */ (newer).disabled = cursor === null;
      pageLabel.textContent = `page ${previous.length + 1}`;
      emptyNotice();
    } catch (error) {
      if (ticket !== generation) return;
      heard = null;
      fill(notice, alertLine(`The jobs could not be loaded: ${/** @type {any} */ (error).message}`));
    }
  }

  /** @param {any} job */
  const onChange = (job) => {
    const changed = job && typeof job.id === "string" ? [job] : [...mine.jobs.values()];
    for (const each of changed) {
      heard?.set(each.id, each);
      upsert(each, true);
    }
  };
  const stopChanges = mine.on("change", onChange);
  void load(null);

  // Ages move on without events.
  const ticker = setInterval(() => {
    for (const { tr, job } of rows.values()) {
      const time = tr.querySelector("time");
      if (time) time.textContent = age(job.created_at);
    }
  }, 5000);

  return {
    /** After a reconnect: the page again from the server (what happened meanwhile). */
    refresh: () => load(cursor),
    destroy: () => {
      clearInterval(ticker);
      unfollowAll();
      stopChanges();
      mine.close();
      generation++;
    },
  };
}
