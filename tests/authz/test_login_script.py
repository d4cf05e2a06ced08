"""The page scripts' logic, run by Node.js against a fake DOM, EventSource and fetch.

No browser is installed here, so this checks what the scripts *do* with each server answer
(finish on approval, a new code on expiry, polling when SSE fails, following ``open`` on the
portal). Skipped when ``node`` is not on the PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import lychgate.authz.login
import lychgate.authz.portal

NODE = shutil.which("node")
LOGIN_JS = Path(lychgate.authz.login.__file__).parent / "static" / "login.js"
PORTAL_JS = Path(lychgate.authz.portal.__file__).parent / "static" / "portal.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js")

# A fake browser: elements by id, EventSource instances, scripted fetch answers, navigation.
HARNESS = r"""
const script = require("fs").readFileSync(process.argv[1], "utf8");
const scenario = JSON.parse(process.argv[2]);
const log = [];
const timers = [];
class Element {
  constructor(id, data) {
    this.id = id; this.dataset = data || {}; this.hidden = false; this.textContent = "";
    this.children = []; this.listeners = {}; this.disabled = false;
    this.classList = { toggle: () => {} };
  }
  addEventListener(type, fn) { this.listeners[type] = fn; }
  replaceChildren(...nodes) { this.children = nodes; log.push(["qr", nodes[0].src]); }
  focus() {}
  closest() { return null; }
}
const elements = {};
for (const [id, data] of Object.entries(scenario.elements)) elements[id] = new Element(id, data);
const sources = [];
class EventSource {
  constructor(url) { this.url = url; this.listeners = {}; this.readyState = 1; sources.push(this);
    log.push(["sse", url]); }
  addEventListener(type, fn) { this.listeners[type] = fn; }
  close() { this.readyState = 2; log.push(["sse-close", this.url]); }
}
EventSource.CLOSED = 2;
const answers = scenario.answers.slice();
global.fetch = async (url, options = {}) => {
  log.push(["fetch", options.method || "GET", url, options.body || null,
            (options.headers || {})["Content-Type"] || null]);
  const a = answers.shift() || { status: 500, body: {} };
  return { status: a.status, ok: a.status >= 200 && a.status < 300,
           headers: { get: (k) => (a.headers || {})[k] || null }, json: async () => a.body };
};
global.document = {
  getElementById: (id) => elements[id] || null,
  createElement: (tag) => new Element(tag),
  querySelectorAll: () => [],
  visibilityState: "visible",
  addEventListener: () => {},
};
global.window = {
  EventSource, isSecureContext: false,
  location: { assign: (u) => log.push(["go", u]), reload: () => log.push(["reload"]) },
};
global.EventSource = EventSource;
global.navigator = {};
global.performance = { now: () => 0 };
global.setInterval = () => 0;
global.setTimeout = (fn) => { timers.push(fn); return timers.length; };
global.clearTimeout = () => {};
const settle = () => new Promise((r) => setImmediate(r));
(async () => {
  new Function(script)();
  for (const step of scenario.steps) {
    const source = sources[sources.length - 1];
    if (step.sse) source.listeners[step.sse.type]({ data: JSON.stringify(step.sse.data) });
    if (step.message) source.onmessage({ data: JSON.stringify(step.message) });
    if (step.error) { source.readyState = 2; source.onerror(); }
    if (step.timers) while (timers.length) timers.shift()();
    if (step.click) elements[step.click].listeners.click();
    for (let i = 0; i < 5; i++) await settle();
  }
  process.stdout.write(JSON.stringify(log));
})();
"""

LOGIN_ELEMENTS = {
    "login": {"api": "/.lychgate/api/v1/login", "rd": "/wiki", "ttl": "120", "loginId": "lr_1"},
    **{
        name: {}
        for name in (
            "qr",
            "number",
            "login-url",
            "status",
            "status-text",
            "countdown",
            "retry",
            "copy",
        )
    },
}
API = "/.lychgate/api/v1/login"


def run(
    script: Path, elements: dict[str, dict[str, str]], answers: list[object], steps: list[object]
) -> list[list[object]]:
    assert NODE is not None
    scenario = json.dumps({"elements": elements, "answers": answers, "steps": steps})
    done = subprocess.run(
        [NODE, "-e", HARNESS, str(script), scenario],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    log: list[list[object]] = json.loads(done.stdout)
    return log


def test_login_waits_on_sse_and_finishes_on_approval() -> None:
    app_start = "http://localhost:8080/.lychgate/start?app=wiki&rd=/"
    log = run(
        LOGIN_JS,
        LOGIN_ELEMENTS,
        [{"status": 200, "body": {"redirect": app_start}}],
        [
            {"sse": {"type": "status", "data": {"status": "pending"}}},
            {"sse": {"type": "status", "data": {"status": "approved"}}},
        ],
    )
    assert log[0] == ["sse", f"{API}/lr_1/events"]
    assert ["fetch", "POST", f"{API}/lr_1/finish", "{}", "application/json"] in log
    assert log[-1] == ["go", app_start]


def test_login_gets_a_new_code_when_one_expires() -> None:
    created = {
        "id": "lr_2",
        "login_url": "http://x/.lychgate/d/login/lr_2",
        "number": 57,
        "expires_at": "2030-01-01T00:00:00Z",
    }
    log = run(
        LOGIN_JS,
        LOGIN_ELEMENTS,
        [{"status": 201, "body": created}],
        [{"sse": {"type": "status", "data": {"status": "expired"}}}],
    )
    assert [
        "fetch",
        "POST",
        API,
        json.dumps({"rd": "/wiki"}, separators=(",", ":")),
        "application/json",
    ] in log
    assert ["qr", f"{API}/lr_2/qr.svg"] in log
    assert log[-1] == ["sse", f"{API}/lr_2/events"]


def test_login_polls_when_sse_fails() -> None:
    log = run(
        LOGIN_JS,
        LOGIN_ELEMENTS,
        [
            {"status": 200, "body": {"status": "approved"}},
            {"status": 200, "body": {"redirect": "/p"}},
        ],
        [{"error": True}, {"timers": True}],
    )
    assert ["fetch", "GET", f"{API}/lr_1", None, None] in log
    assert log[-1] == ["go", "/p"]


def test_login_stops_on_denial_and_on_a_lost_binding() -> None:
    denied = run(
        LOGIN_JS, LOGIN_ELEMENTS, [], [{"sse": {"type": "status", "data": {"status": "denied"}}}]
    )
    assert not any(entry[0] in ("fetch", "go") for entry in denied)
    replaced = run(
        LOGIN_JS,
        LOGIN_ELEMENTS,
        [{"status": 404, "body": {"detail": "not_found"}}],
        [{"sse": {"type": "status", "data": {"status": "approved"}}}],
    )
    assert not any(entry[0] == "go" for entry in replaced)


PORTAL_ELEMENTS = {
    "portal": {
        "events": "/.lychgate/api/v1/session/events",
        "logout": "/.lychgate/api/v1/session/logout",
        "sessions": "/.lychgate/api/v1/sessions",
        "login": "/.lychgate/login",
    },
    "portal-status": {},
    "logout": {},
}


def test_portal_follows_open_and_signed_out_events() -> None:
    url = "http://localhost:8080/.lychgate/start?app=wiki&rd=/"
    opened = run(PORTAL_JS, PORTAL_ELEMENTS, [], [{"message": {"type": "open", "url": url}}])
    assert opened[0] == ["sse", "/.lychgate/api/v1/session/events"]
    assert opened[-1] == ["go", url]
    out = run(PORTAL_JS, PORTAL_ELEMENTS, [], [{"message": {"type": "signed_out"}}])
    assert out[-1] == ["go", "/.lychgate/login"]


def test_portal_signs_out_with_json() -> None:
    log = run(
        PORTAL_JS,
        PORTAL_ELEMENTS,
        [{"status": 200, "body": {"redirect": "/.lychgate/login"}}],
        [{"click": "logout"}],
    )
    assert ["fetch", "POST", "/.lychgate/api/v1/session/logout", "{}", "application/json"] in log
    assert log[-1] == ["go", "/.lychgate/login"]


@pytest.mark.parametrize(
    ("detail", "reloads"), [("already_finished", True), ("not_approved", False)]
)
def test_login_reloads_when_another_finish_won(detail: str, reloads: bool) -> None:
    # Another tab of this browser (or a retry) finished the request first: its session
    # cookie is this page's too, so a reload goes on; any other refusal offers a retry.
    log = run(
        LOGIN_JS,
        LOGIN_ELEMENTS,
        [{"status": 409, "body": {"detail": detail}}],
        [{"sse": {"type": "status", "data": {"status": "approved"}}}],
    )
    assert ["fetch", "POST", f"{API}/lr_1/finish", "{}", "application/json"] in log
    assert (["reload"] in log) is reloads
