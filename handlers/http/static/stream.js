// The WebSocket to /ws: one connection for the page, reconnecting by itself with exponential
// backoff and jitter, and a status the header shows. On every (re)open it subscribes to the kinds
// of events the page shows (outcomes come only when asked for), and once the hub has confirmed
// that, whoever listens is told, so it can fill the gap from the REST API: anything stored after
// the confirmation arrives over the socket, anything before it is in the REST answers.

import { getJson, wsUrl } from "./api.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

export class Stream {
  constructor({ kinds, onEvents, onOpen, onStatus }) {
    Object.assign(this, { kinds, onEvents, onOpen, onStatus });
    this.ws = null;
    this.failures = 0;
    this.timer = null;
    this.paused = false;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.paused) return;
    this.onStatus("connecting", "connecting…");
    const ws = new WebSocket(wsUrl());
    let opened = false;
    this.ws = ws;
    let subscribed = false;
    const ready = () => {
      if (subscribed) return;
      subscribed = true;
      this.onStatus("live", "live");
      this.onOpen();
    };
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      ws.send(JSON.stringify({ subscribe: { kinds: this.kinds } }));
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "events") this.onEvents(frame.events);
      // An error answers the subscription too (a hub that does not know a kind): the page then
      // gets the hub's default kinds, which is still worth showing.
      else if (frame.type === "subscribed" || frame.type === "error") ready();
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry(opened);
    };
  }

  retry(wasOpen) {
    if (this.paused) {
      this.onStatus("offline", "disconnected");
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures) * (0.5 + Math.random() / 2);
    this.failures += 1;
    this.onStatus("offline", `offline, retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    this.timer = setTimeout(async () => {
      // A browser cannot see why a WebSocket handshake failed: if it never opened, ask the
      // REST API, which answers 401 (and so prompts for the token) when that was the reason.
      if (!wasOpen) await getJson("/api/trades", { limit: 1 }).catch(() => {});
      this.connect();
    }, delay);
  }

  /** Close the socket and stay offline until resume() (a debugging and testing aid). */
  pause() {
    this.paused = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }

  resume() {
    this.paused = false;
    this.failures = 0;
    if (!this.ws) this.connect();
  }
}
