// The page's token: taken from the URL fragment (#token=<jwt>, never sent to the server),
// kept in sessionStorage (this tab only), dropped from the address bar at once.

const KEY = "jobspine.token";

/** @typedef {{token: string, sub: string, role: string, exp: number | null}} Session */

/** The token of the fragment, if any, moved to sessionStorage; the fragment keeps the route. */
export function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match === null) return;
  sessionStorage.setItem(KEY, decodeURIComponent(match[1] ?? ""));
  const rest = location.hash.replace(/(^#|&)token=[^&]+/, "$1").replace(/^#&/, "#");
  history.replaceState(null, "", location.pathname + location.search + (rest === "#" ? "#/" : rest));
}

/** The stored session, or null when there is no readable token. @returns {Session | null} */
export function currentSession() {
  const token = sessionStorage.getItem(KEY);
  return token === null ? null : parseToken(token);
}

/** @param {string} token @returns {Session | null} */
export function parseToken(token) {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const payload = JSON.parse(atob((parts[1] ?? "").replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof payload !== "object" || payload === null || typeof payload.sub !== "string") return null;
    return {
      token: token.trim(),
      sub: payload.sub,
      role: typeof payload.role === "string" ? payload.role : "user",
      exp: typeof payload.exp === "number" ? payload.exp : null,
    };
  } catch {
    return null;
  }
}

/** @param {string} token */
export function storeToken(token) {
  sessionStorage.setItem(KEY, token.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}
