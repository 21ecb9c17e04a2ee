// The job actions: which ones a state allows (the shared transition table, served by the
// server as /ui/states.json), running one, and saying a refusal in plain words.

import { h } from "./dom.js";

/** Button names, exactly as the issue asks, in display order. */
export const ACTIONS = ["Pause", "Resume", "Cancel", "Restart", "Delete"];

/** @typedef {import("./context.js").StatesDocument} StatesDocument */

/**
 * The actions `job`'s state allows. A running job already asked to pause offers no second
 * Pause (the server would answer the same job).
 * @param {StatesDocument} table @param {{state: string, pause_requested?: boolean}} job
 */
export function allowedActions(table, job) {
  return ACTIONS.filter((name) => {
    const states = table.user_actions[name.toLowerCase()] ?? [];
    if (!states.includes(job.state)) return false;
    return !(name === "Pause" && job.state === "running" && job.pause_requested);
  });
}

/** @param {import("./context.js").Client} client @param {import("./api.js").Api} api @param {string} name @param {string} id */
export async function runAction(client, api, name, id) {
  switch (name) {
    case "Pause":
      return client.pause(id);
    case "Resume":
      return client.resume(id);
    case "Cancel":
      return client.cancel(id);
    case "Restart":
      return client.restart(id);
    case "Delete":
      return api.deleteJob(id);
    default:
      throw new Error(`unknown action ${name}`);
  }
}

const VERBS = { Pause: "paused", Resume: "resumed", Cancel: "cancelled", Restart: "restarted", Delete: "deleted" };

/** The element a view keeps for refusals (role=alert) and hands to {@link actionBar}. */
export function refusalLine() {
  return h("p", { class: "refusal", role: "alert" });
}

/**
 * A refusal in plain words, from the error envelope's code and details.
 * @param {string} action @param {{code?: string, message?: string, details?: any}} error
 */
export function refusalText(action, error) {
  const verb = /** @type {Record<string, string>} */ (VERBS)[action] ?? action.toLowerCase();
  const state = error.details?.state;
  switch (error.code) {
    case "invalid_transition":
      return state
        ? `This job can't be ${verb} now: it is ${state}.`
        : `This job can't be ${verb} in its current state.`;
    case "not_found":
      return "This job no longer exists, or you may not see it.";
    case "forbidden":
      return `You may not ${action.toLowerCase()} this job.`;
    case "unauthorized":
      return "Your session has expired: sign in again.";
    case "rate_limited":
      return `Too many requests: try again in ${Math.ceil(error.details?.retry_after_s ?? 1)} s.`;
    case "unavailable":
      return "The server is unavailable right now: try again in a moment.";
    case "validation_error":
    case "payload_too_large":
      return `The server refused it: ${error.message ?? "invalid input"}.`;
    default:
      return `It didn't work: ${error.message ?? error.code ?? "unknown error"}.`;
  }
}

/**
 * A toolbar of the allowed buttons; `onDone` after a success. A refusal is written into
 * `feedback` (role=alert), which the caller keeps when it re-renders the bar, so the words
 * stay when the job's change arrives right after the refusal.
 * @param {{table: StatesDocument, client: import("./context.js").Client, api: import("./api.js").Api, job: any,
 *   feedback: HTMLElement, onDone?: (name: string) => void}} options
 */
export function actionBar({ table, client, api, job, feedback, onDone }) {
  const buttons = allowedActions(table, job).map((name) =>
    h(
      "button",
      {
        type: "button",
        class: name === "Delete" || name === "Cancel" ? "danger" : "",
        onclick: async (/** @type {Event} */ event) => {
          const button = /** @type {HTMLButtonElement} */ (event.currentTarget);
          button.disabled = true;
          feedback.textContent = "";
          try {
            await runAction(client, api, name, job.id);
            onDone?.(name);
          } catch (error) {
            feedback.textContent = refusalText(name, /** @type {any} */ (error));
          } finally {
            button.disabled = false;
          }
        },
      },
      name,
    ),
  );
  const note = job.state === "running" && job.pause_requested ? h("span", { class: "note" }, "Pause requested: the worker pauses at its next step.") : null;
  return h("div", { class: "actions" }, h("div", { role: "toolbar", "aria-label": "Actions" }, buttons, note));
}
