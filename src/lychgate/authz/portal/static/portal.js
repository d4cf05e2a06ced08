// The portal page: follow `open` events pushed by the device, sign out, revoke sessions.
// No inline script (strict CSP); endpoints come from data-* attributes.
(() => {
  "use strict";

  const root = document.getElementById("portal");
  if (!root) return;

  const { events: eventsUrl, logout: logoutUrl, sessions: sessionsUrl, login: loginUrl } = root.dataset;
  const status = document.getElementById("portal-status");
  const jsonHeaders = { "Content-Type": "application/json", Accept: "application/json" };

  function say(text) {
    status.textContent = text;
  }

  function listen() {
    if (!("EventSource" in window)) return;
    const source = new EventSource(eventsUrl);
    source.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data.type === "open" && typeof data.url === "string") {
        say("Opening the app chosen on your device…");
        source.close();
        window.location.assign(data.url);
      } else if (data.type === "signed_out") {
        source.close();
        window.location.assign(loginUrl);
      }
    };
    source.onerror = () => {
      // EventSource retries by itself; once it gives up (the session ended), reload.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => window.location.reload(), 5000);
      }
    };
  }

  async function logout(button) {
    button.disabled = true;
    try {
      const response = await fetch(logoutUrl, {
        method: "POST",
        headers: jsonHeaders,
        body: "{}",
        credentials: "same-origin",
      });
      const data = response.ok ? await response.json() : { redirect: loginUrl };
      window.location.assign(data.redirect);
    } catch {
      button.disabled = false;
      say("Could not reach the server; you are still signed in.");
    }
  }

  async function revoke(button) {
    button.disabled = true;
    const handle = button.dataset.handle;
    try {
      const response = await fetch(`${sessionsUrl}/${encodeURIComponent(handle)}`, {
        method: "DELETE",
        credentials: "same-origin",
      });
      if (response.status === 204 || response.status === 404) {
        if (button.dataset.current === "yes") {
          window.location.assign(loginUrl);
          return;
        }
        const row = button.closest("tr");
        if (row) row.remove();
        say("Signed out there.");
        return;
      }
      if (response.status === 401) {
        window.location.assign(loginUrl);
        return;
      }
      say("Could not sign out that session.");
    } catch {
      say("Could not reach the server.");
    }
    button.disabled = false;
  }

  const logoutButton = document.getElementById("logout");
  if (logoutButton) logoutButton.addEventListener("click", () => logout(logoutButton));
  for (const button of document.querySelectorAll("button.revoke")) {
    button.addEventListener("click", () => revoke(button));
  }
  listen();
})();
