// REST calls, with the hub's API token when it has one. /api/health says nothing about auth,
// so the token is asked for when a call answers 401, and asked again if a stored one is refused.

import { $ } from "./util.js";

const TOKEN_KEY = "tradeHub.apiToken";
let asking = null; // one prompt at a time, shared by every call that got a 401

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${body.message} (${status})` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Ask the user for the token (a modal form); resolves once a token was entered. */
function askToken(refused) {
  if (asking) return asking;
  const dialog = $("token-dialog");
  const input = $("token-input");
  $("token-error").hidden = !refused;
  input.value = "";
  asking = new Promise((resolve) => {
    const done = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      localStorage.setItem(TOKEN_KEY, value);
      $("token-form").removeEventListener("submit", done);
      dialog.close();
      asking = null;
      resolve(value);
    };
    $("token-form").addEventListener("submit", done);
    dialog.oncancel = (event) => event.preventDefault(); // Escape: nothing works without it
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** The token to put on the WebSocket URL, or "" for a hub without one. */
export function wsUrl(path = "/ws") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  return `${scheme}//${location.host}${path}${t ? `?token=${encodeURIComponent(t)}` : ""}`;
}

/** GET PATH (with PARAMS, empty ones dropped) as JSON; on 401 prompt for the token and retry. */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) query.set(key, String(value));
  }
  const url = query.toString() ? `${path}?${query}` : path;
  for (;;) {
    const sent = token();
    const headers = { Accept: "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const response = await fetch(url, { headers });
    if (response.status === 401) {
      // Another call may already have been given a new token while this one was in flight.
      if (token() === sent) await askToken(Boolean(sent));
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }
}
