// The QR login page: wait for the device, finish, go on. No inline script (strict CSP).
//
// Wait on the SSE stream (`.../events`); if it fails, poll `GET .../{id}` every two seconds.
// `approved`: POST `.../finish` and go to the returned redirect. `expired`: start a fresh
// request through the JSON API and show its QR code (a few times, then ask). `denied`: stop.
(() => {
  "use strict";

  const root = document.getElementById("login");
  if (!root) return;

  const api = root.dataset.api;
  const rd = root.dataset.rd;
  const ttlMs = Number(root.dataset.ttl) * 1000;
  const POLL_MS = 2000;
  const AUTO_REFRESHES = 5;

  const $ = (id) => document.getElementById(id);
  const qr = $("qr");
  const number = $("number");
  const link = $("login-url");
  const status = $("status");
  const statusText = $("status-text");
  const countdown = $("countdown");
  const retry = $("retry");
  const copy = $("copy");

  let current = { id: root.dataset.loginId, deadline: performance.now() + ttlMs };
  let source = null;
  let pollTimer = null;
  let refreshes = 0;
  let busy = false;

  const jsonHeaders = { "Content-Type": "application/json", Accept: "application/json" };
  const url = (suffix) => `${api}/${encodeURIComponent(current.id)}${suffix}`;

  function say(text, kind) {
    statusText.textContent = text;
    status.classList.toggle("ok", kind === "ok");
    status.classList.toggle("error", kind === "error");
  }

  function stopWaiting() {
    if (source) {
      source.close();
      source = null;
    }
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  function offerRetry(text) {
    stopWaiting();
    say(text, "error");
    countdown.hidden = true;
    retry.hidden = false;
    retry.focus();
  }

  function wait() {
    stopWaiting();
    if (!("EventSource" in window)) {
      poll();
      return;
    }
    const events = new EventSource(url("/events"));
    source = events;
    events.addEventListener("status", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(data.status);
    });
    events.onerror = () => {
      // The stream ended or broke before a decision reached us: poll instead.
      if (source === events) {
        stopWaiting();
        pollTimer = setTimeout(poll, POLL_MS);
      }
    };
  }

  async function poll() {
    pollTimer = null;
    let response;
    try {
      response = await fetch(url(""), { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch {
      pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    if (response.status === 404) {
      offerRetry("This sign-in was replaced, perhaps in another tab.");
      return;
    }
    if (!response.ok) {
      pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    const data = await response.json();
    if (data.status === "pending") {
      pollTimer = setTimeout(poll, POLL_MS);
    }
    handle(data.status);
  }

  function handle(state) {
    switch (state) {
      case "pending":
        say("Waiting for your device…");
        break;
      case "approved":
        stopWaiting();
        finish();
        break;
      case "denied":
        offerRetry("The sign-in was refused on the device.");
        break;
      case "expired":
        stopWaiting();
        expired();
        break;
      case "finished":
        stopWaiting();
        window.location.reload();
        break;
      default:
        break;
    }
  }

  async function finish() {
    if (busy) return;
    busy = true;
    say("Approved. Signing you in…", "ok");
    countdown.hidden = true;
    try {
      const response = await fetch(url("/finish"), {
        method: "POST",
        headers: jsonHeaders,
        body: "{}",
        credentials: "same-origin",
      });
      if (response.ok) {
        const data = await response.json();
        window.location.assign(data.redirect);
        return;
      }
      if (response.status === 409 && (await detailOf(response)) === "already_finished") {
        // Another tab (or a retry) finished it first: its session cookie is ours too.
        window.location.reload();
        return;
      }
      offerRetry(
        response.status === 404
          ? "This sign-in was replaced, perhaps in another tab."
          : "This sign-in can no longer be used.",
      );
    } catch {
      offerRetry("Could not reach the server.");
    } finally {
      busy = false;
    }
  }

  async function detailOf(response) {
    try {
      return (await response.json()).detail;
    } catch {
      return null;
    }
  }

  function expired() {
    if (refreshes >= AUTO_REFRESHES) {
      offerRetry("The code expired.");
      return;
    }
    if (document.visibilityState === "hidden") {
      // Do not mint requests for nobody: wait until the page is looked at again.
      say("The code expired.");
      document.addEventListener("visibilitychange", () => expired(), { once: true });
      return;
    }
    refreshes += 1;
    refresh();
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    retry.hidden = true;
    say("Getting a new code…");
    try {
      const response = await fetch(api, {
        method: "POST",
        headers: jsonHeaders,
        body: JSON.stringify({ rd }),
        credentials: "same-origin",
      });
      if (response.status === 429) {
        const wait = Number(response.headers.get("Retry-After")) || 60;
        offerRetry(`Too many attempts. Try again in ${wait} seconds.`);
        return;
      }
      if (!response.ok) {
        offerRetry("Could not get a new code.");
        return;
      }
      const data = await response.json();
      current = { id: data.id, deadline: performance.now() + ttlMs };
      number.textContent = String(data.number).padStart(2, "0");
      link.textContent = data.login_url;
      const image = document.createElement("img");
      image.alt = "QR code of the sign-in link";
      image.src = url("/qr.svg");
      qr.replaceChildren(image);
      countdown.hidden = false;
      say("Waiting for your device…");
      wait();
    } catch {
      offerRetry("Could not reach the server.");
    } finally {
      busy = false;
    }
  }

  function tick() {
    const left = Math.max(0, Math.round((current.deadline - performance.now()) / 1000));
    countdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }

  retry.addEventListener("click", () => {
    refreshes = 0;
    refresh();
  });

  if (navigator.clipboard && window.isSecureContext) {
    copy.hidden = false;
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(link.textContent);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Copy failed";
      }
    });
  }

  setInterval(tick, 1000);
  tick();
  wait();
})();
