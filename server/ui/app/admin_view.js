// The admin view (#/admin): the supervisor's status and the stats by state, read again on
// every job change the admin's watches see and by the Refresh button.

import { h, fill } from "./dom.js";
import { when } from "./format.js";
import { alertLine, stateBadge } from "./widgets.js";

/**
 * @param {import("./context.js").Context} ctx
 * @param {HTMLElement} container
 * @returns {import("./context.js").View}
 */
export function mountAdminView(ctx, container) {
  const supervisor = h("div");
  const stats = h("div");
  let closed = false;

  fill(
    container,
    h(
      "section",
      { class: "admin-view", "aria-labelledby": "admin-title" },
      h("h2", { id: "admin-title" }, "Admin"),
      h("button", { type: "button", onclick: () => void load() }, "Refresh"),
      h("section", { "aria-labelledby": "stats-title" }, h("h3", { id: "stats-title" }, "Jobs by state"), stats),
      h("section", { "aria-labelledby": "supervisor-title" }, h("h3", { id: "supervisor-title" }, "Supervisor"), supervisor),
    ),
  );

  async function load() {
    try {
      const [counts, status] = await Promise.all([ctx.api.stats(), ctx.api.supervisor()]);
      if (closed) return;
      fill(
        stats,
        h("table", { class: "stats", "aria-labelledby": "stats-title" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Jobs"))),
          h("tbody", null,
            ctx.table.states.map((/** @type {string} */ s) =>
              h("tr", { "data-state": s }, h("td", null, stateBadge(s)), h("td", { class: "count" }, String(counts.by_state?.[s] ?? 0))),
            ),
            h("tr", { class: "total" }, h("td", null, "total"), h("td", { class: "count" }, String(counts.total))),
          ),
        ),
      );
      fill(
        supervisor,
        h("dl", { class: "facts" },
          Object.entries(status).map(([key, value]) => [
            h("dt", null, key.replace(/_/g, " ")),
            h("dd", null, key.endsWith("_at") && typeof value === "string" ? when(value) : typeof value === "object" ? JSON.stringify(value) : String(value)),
          ]),
        ),
      );
    } catch (error) {
      if (!closed) fill(stats, alertLine(`Could not load: ${/** @type {any} */ (error).message}`));
    }
  }

  void load();
  const timer = setInterval(() => void load(), 5000);
  return {
    refresh: () => void load(),
    destroy: () => {
      closed = true;
      clearInterval(timer);
    },
  };
}
