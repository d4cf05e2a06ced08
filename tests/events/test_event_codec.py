"""The wire form of events: exact round trips, a pinned format, and hostile payloads."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.helpers import SAMPLES
from lychgate.errors import ClientError, UsageError
from lychgate.events import (
    MAX_PAYLOAD_BYTES,
    ConfigChanged,
    Event,
    EventDecodeError,
    LoginApproved,
    LoginDenied,
    OpenApp,
    SessionRevoked,
    decode,
    encode,
)
from lychgate.ids import DeviceId, LoginRequestId, SessionId, UserId

# The autouse blockbuster fixture is function-scoped but holds no per-example state.
fuzz = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    assert decode(encode(event)) == event


def test_wire_form_is_pinned() -> None:
    # Replicas of different versions read each other's payloads: this format must not drift.
    event = LoginApproved(LoginRequestId("lr_1"), UserId("u_1"), DeviceId("d_1"))
    assert encode(event) == (
        '{"data":{"device_id":"d_1","login_id":"lr_1","user_id":"u_1"},"type":"login.approved"}'
    )


def test_wire_names() -> None:
    names = {type(e): json.loads(encode(e))["type"] for e in SAMPLES}
    assert names == {
        LoginApproved: "login.approved",
        LoginDenied: "login.denied",
        SessionRevoked: "session.revoked",
        ConfigChanged: "config.changed",
        OpenApp: "app.open",
    }


def test_encoding_is_ascii() -> None:
    text = encode(OpenApp(SessionId("s_1"), "https://ünïcödé.example/☃"))
    assert text.isascii()
    assert decode(text) == OpenApp(SessionId("s_1"), "https://ünïcödé.example/☃")


_text = st.text(min_size=1, max_size=200)
_events = st.one_of(
    st.builds(LoginApproved, _text, _text, _text),
    st.builds(LoginDenied, _text),
    st.builds(SessionRevoked, _text, _text),
    st.builds(ConfigChanged, _text),
    st.builds(OpenApp, _text, _text),
)


@fuzz
@given(_events)
def test_round_trip_any_text(event: Event) -> None:
    assert decode(encode(event)) == event


def test_payload_limit_is_exact() -> None:
    skeleton = encode(ConfigChanged("x"))
    at_limit = ConfigChanged("x" * (MAX_PAYLOAD_BYTES - len(skeleton) + 1))
    assert len(encode(at_limit)) == MAX_PAYLOAD_BYTES
    over = ConfigChanged(at_limit.what + "x")
    with pytest.raises(UsageError, match="limit") as info:
        encode(over)
    assert info.value.field == "event"


def test_limit_counts_escaped_bytes() -> None:
    # Each snowman is 6 bytes once escaped; counting characters would let this through.
    with pytest.raises(UsageError, match="limit"):
        encode(ConfigChanged("☃" * (MAX_PAYLOAD_BYTES // 6 + 1)))


@dataclass(frozen=True, slots=True)
class NotAnEvent:
    what: str


def test_encode_refuses_unregistered_types() -> None:
    with pytest.raises(UsageError, match="not a registered event type"):
        encode(NotAnEvent("apps"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (ConfigChanged(""), "what"),
        (LoginDenied(LoginRequestId("")), "login_id"),
        (ConfigChanged(42), "what"),  # type: ignore[arg-type]
        (OpenApp(SessionId("s"), None), "url"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_empty_or_non_string_fields(event: Event, field: str) -> None:
    with pytest.raises(UsageError) as info:
        encode(event)
    assert info.value.field == field


LID = "data.login_id"
BAD_PAYLOADS = [
    pytest.param("", None, id="empty"),
    pytest.param("not json", None, id="not-json"),
    pytest.param("[]", None, id="array"),
    pytest.param('"login.denied"', None, id="string"),
    pytest.param("null", None, id="null"),
    pytest.param('{"type":"login.denied"}', None, id="no-data"),
    pytest.param('{"data":{"login_id":"x"}}', None, id="no-type"),
    pytest.param('{"type":"login.denied","data":{"login_id":"x"},"x":1}', None, id="extra-key"),
    pytest.param('{"type":"nope","data":{}}', "type", id="unknown-type"),
    pytest.param('{"type":"LOGIN.DENIED","data":{"login_id":"x"}}', "type", id="type-case"),
    pytest.param('{"type":["login.denied"],"data":{"login_id":"x"}}', "type", id="type-list"),
    pytest.param('{"type":"__class__","data":{}}', "type", id="type-dunder"),
    pytest.param('{"type":"login.denied","data":[]}', "data", id="data-list"),
    pytest.param('{"type":"login.denied","data":{}}', "data", id="missing-field"),
    pytest.param(
        '{"type":"login.denied","data":{"login_id":"x","user_id":"u"}}', "data", id="extra-field"
    ),
    pytest.param('{"type":"login.denied","data":{"login_id":""}}', LID, id="field-empty"),
    pytest.param('{"type":"login.denied","data":{"login_id":7}}', LID, id="field-int"),
    pytest.param('{"type":"login.denied","data":{"login_id":null}}', LID, id="field-null"),
    pytest.param('{"type":"login.denied","data":{"login_id":{"a":1}}}', LID, id="field-object"),
    pytest.param('{"type":"login.denied","data":{"login_id":NaN}}', None, id="nan"),
    pytest.param(
        '{"type":"login.denied","type":"config.changed","data":{"what":"x"}}', None, id="dup-key"
    ),
    pytest.param(
        '{"type":"login.denied","data":{"login_id":"a","login_id":"b"}}', None, id="dup-field"
    ),
    pytest.param("[" * 5000 + "]" * 2000, None, id="deep-nesting"),
    pytest.param('{"type":"config.changed","data":{"what":"\udcff"}}', None, id="surrogate"),
    pytest.param(
        '{"type":"config.changed","data":{"what":"' + "x" * MAX_PAYLOAD_BYTES + '"}}',
        None,
        id="oversize",
    ),
]


@pytest.mark.parametrize(("payload", "field"), BAD_PAYLOADS)
def test_bad_payloads_are_client_errors(payload: str, field: str | None) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode(payload)
    err = info.value
    assert isinstance(err, ClientError)
    assert err.status == 400
    assert err.field == field
    assert len(str(err)) < 200  # the payload is never echoed back whole


def test_decode_refuses_bytes() -> None:
    with pytest.raises(EventDecodeError):
        decode(b'{"type":"login.denied","data":{"login_id":"x"}}')  # type: ignore[arg-type]


@fuzz
@given(st.text(max_size=300))
def test_decode_never_fails_another_way_on_text(payload: str) -> None:
    with contextlib.suppress(EventDecodeError):
        decode(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_names = st.sampled_from(["login.approved", "login.denied", "session.revoked", "app.open", "x"])
_fields = st.sampled_from(["login_id", "user_id", "device_id", "session_id", "url", "what"])


@fuzz
@given(
    st.fixed_dictionaries(
        {"type": _names | _json, "data": st.dictionaries(_fields, _json | _text) | _json}
    )
)
def test_decode_never_fails_another_way_on_near_misses(doc: dict[str, object]) -> None:
    try:
        event = decode(json.dumps(doc))
    except EventDecodeError:
        return
    assert encode(event) == json.dumps(doc, separators=(",", ":"), sort_keys=True)
