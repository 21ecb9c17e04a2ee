// Small pieces shared by the views: the progress bar, the state badge, notices.

import { h } from "./dom.js";
import { percent } from "./format.js";

/** A progress bar whose aria-valuenow is the job's progress, exactly. @param {number} progress @param {string} label */
export function progressBar(progress, label) {
  const fill = h("span", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(100, progress))}%`;
  return h(
    "span",
    {
      class: "bar",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(progress),
      "aria-valuetext": percent(progress),
      "aria-label": label,
    },
    fill,
    h("span", { class: "bar-text" }, percent(progress)),
  );
}

/** @param {string} state */
export function stateBadge(state) {
  return h("span", { class: `state state-${state}`, "data-state": state }, state);
}

/** An inline error line (role=alert). @param {string} text */
export function alertLine(text) {
  return h("p", { class: "error", role: "alert" }, text);
}
