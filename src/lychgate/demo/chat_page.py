"""The chat's one page: static HTML and a little vanilla JS (no build, no framework).

Messages are put on the page with ``textContent`` only, never as HTML, so a message cannot
inject markup. The socket reconnects after a drop, except when the server refused it (1008).
"""

from __future__ import annotations

from typing import Final

CHAT_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chat</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 46rem; padding: 1rem;
       display: flex; flex-direction: column; height: 100vh; box-sizing: border-box; }
#log { flex: 1; overflow-y: auto; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }
#log p { margin: .2rem 0; } .who { font-weight: 600; } .meta { color: #777; font-size: .85em; }
.notice { color: #b00020; } form { display: flex; gap: .5rem; margin-top: .5rem; }
#text { flex: 1; padding: .4rem; font: inherit; } #status { color: #555; }
</style></head>
<body>
<h1>chat</h1>
<p id="status">connecting&hellip;</p>
<div id="log" aria-live="polite"></div>
<form id="send"><input id="text" maxlength="500" autocomplete="off" placeholder="Say something"
 aria-label="message"><button>Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const statusLine = document.getElementById("status");
const input = document.getElementById("text");
let socket = null;

function line(parts, cls) {
  const p = document.createElement("p");
  if (cls) p.className = cls;
  for (const [text, partCls] of parts) {
    const span = document.createElement("span");
    span.textContent = text;
    if (partCls) span.className = partCls;
    p.appendChild(span);
  }
  log.appendChild(p);
  log.scrollTop = log.scrollHeight;
}

function show(event) {
  const time = new Date(event.at).toLocaleTimeString();
  if (event.type === "welcome") statusLine.textContent = "connected as " + event.from;
  else if (event.type === "message")
    line([[time + " ", "meta"], [event.from + ": ", "who"], [event.text, null]]);
  else if (event.type === "joined" || event.type === "left")
    line([[time + " " + event.from + " " + event.type, "meta"]]);
  else if (event.type === "notice") line([[event.text, null]], "notice");
}

function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(url);
  socket.onmessage = (m) => show(JSON.parse(m.data));
  socket.onclose = (e) => {
    if (e.code === 1008) {
      statusLine.textContent = "disconnected: " + (e.reason || "refused") + " (reload to retry)";
      return;
    }
    statusLine.textContent = "disconnected; reconnecting\u2026";
    setTimeout(connect, 2000);
  };
}

document.getElementById("send").addEventListener("submit", (e) => {
  e.preventDefault();
  if (socket && socket.readyState === WebSocket.OPEN && input.value.trim()) {
    socket.send(input.value);
    input.value = "";
  }
});
connect();
</script>
</body></html>
"""
