// The dashboard's entry point: the session (token), the client, the connection status and
// the router between the jobs view (#/), a job (#/jobs/<id>) and the admin view (#/admin).

import { JobspineClient } from "@jobspine/client";
import { Api } from "./api.js";
import { byId, fill } from "./dom.js";
import { takeTokenFromFragment, currentSession, parseToken, storeToken, forgetToken } from "./session.js";
import { mountJobsView } from "./jobs_view.js";
import { mountJobView } from "./job_view.js";
import { mountAdminView } from "./admin_view.js";

/** What the role=status element reads for each client status. */
const STATUS_TEXT = { connecting: "connecting", live: "live", reconnecting: "reconnecting", expired: "session expired" };

const view = byId("view");
const connection = byId("connection");
const signIn = byId("sign-in");

/** @type {{refresh: () => void, destroy: () => void} | null} */
let current = null;

function boot() {
  takeTokenFromFragment();
  wireSignIn();
  const session = currentSession();
  if (session === null) {
    showSignIn("");
    return;
  }
  void start(session);
}

/** @param {string} why */
function showSignIn(why) {
  signIn.hidden = false;
  byId("sign-in-error").textContent = why;
  connection.hidden = why === "";
}

function wireSignIn() {
  byId("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = /** @type {HTMLTextAreaElement} */ (byId("token-input"));
    const session = parseToken(input.value);
    if (session === null) {
      byId("sign-in-error").textContent = "That is not a JWT: it should be three parts separated by dots.";
      return;
    }
    storeToken(session.token);
    input.value = "";
    location.reload(); // a fresh client with the new token; the route in the fragment stays
  });
  byId("sign-out").addEventListener("click", () => {
    forgetToken();
    location.hash = "#/";
    location.reload();
  });
}

/** @param {string} status */
function showStatus(status) {
  const text = /** @type {Record<string, string>} */ (STATUS_TEXT)[status] ?? status;
  connection.textContent = text;
  connection.dataset.status = status;
}

/** @param {import("./session.js").Session} session */
async function start(session) {
  byId("who").textContent = `${session.sub} (${session.role})`;
  byId("sign-out").hidden = false;
  const admin = session.role === "admin";
  /** @type {HTMLElement} */ (document.querySelector('[data-nav="admin"]')).hidden = !admin;

  const api = new Api(() => currentSession()?.token ?? "");
  let table;
  try {
    table = await api.states();
  } catch (error) {
    fill(view, `The dashboard could not start: ${/** @type {Error} */ (error).message}. Reload to try again.`);
    return;
  }
  const client = new JobspineClient({
    url: location.origin,
    token: async () => currentSession()?.token ?? session.token,
    storage: sessionStorage,
  });
  let wasLive = false;
  let everLive = false;
  client.on("status", (/** @type {string} */ status) => {
    showStatus(status);
    if (status === "live") {
      if (everLive && !wasLive) current?.refresh();
      everLive = true;
      wasLive = true;
    } else {
      wasLive = false;
    }
    if (status === "expired") showSignIn("Your session has expired: paste a new token.");
  });
  const ctx = { client, api, session, table };

  const route = () => {
    current?.destroy();
    current = null;
    const match = /^#\/jobs\/([^/?]+)$/.exec(location.hash);
    for (const link of document.querySelectorAll("[data-nav]")) link.removeAttribute("aria-current");
    if (match) {
      current = mountJobView(ctx, view, decodeURIComponent(match[1] ?? ""));
    } else if (location.hash === "#/admin" && admin) {
      current = mountAdminView(ctx, view);
      document.querySelector('[data-nav="admin"]')?.setAttribute("aria-current", "page");
    } else {
      current = mountJobsView(ctx, view);
      document.querySelector('[data-nav="jobs"]')?.setAttribute("aria-current", "page");
    }
  };
  window.addEventListener("hashchange", () => {
    route();
    byId("main").focus({ preventScroll: false });
  });
  try {
    await client.connect();
  } catch (error) {
    const code = /** @type {any} */ (error)?.code;
    if (code === "unauthorized") {
      showStatus("expired");
      showSignIn("This token was refused (expired or not signed for this server): paste a new one.");
      return;
    }
    // other failures: the client keeps reconnecting and reports its status
  }
  route();
}

boot();
