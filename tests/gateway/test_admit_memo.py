"""The memo of admitted cookies: it saves work, never a check.

Revocation, expiry, key rotation and user removal must all win over a remembered admission, both
through :func:`admit` and through the handler that keeps the memo across requests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.world import FETCH, NOW, Clock, NoAuthz, World
from lychgate.errors import UsageError
from lychgate.gateway.admission import Deny, ToApp, admit
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.admit_memo import AdmissionMemo
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Forward, RequestHead, Respond, Upstream
from lychgate.ids import AppSlug, SessionId, UserId
from lychgate.tokens import CachedVerifier

SINGLE = World("single-host")
SUBS = World("subdomains")


def handler_for(world: World, clock: Clock) -> tuple[GatewayHandler, SnapshotHolder]:
    holder = SnapshotHolder()
    holder.replace(world.snapshot)
    options = GatewayOptions(Upstream("unix:/run/lychgate/authz.sock"))
    return GatewayHandler(holder, options, Endpoints(holder, NoAuthz()), clock=clock), holder


def request(world: World, *cookies: str) -> RequestHead:
    return world.head("/page", cookies=list(cookies), headers=FETCH)


def refused(decision: object) -> bool:
    return isinstance(decision, Respond) and decision.status == 401


# -- through admit ------------------------------------------------------------------------------


def test_a_second_request_is_decided_from_the_memo() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token())
    first = admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(first, ToApp)
    assert (memo.hits, memo.misses, len(memo)) == (0, 1, 1)
    verifications = verifier.hits + verifier.misses
    second = admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert second == first
    assert memo.hits == 1
    assert verifier.hits + verifier.misses == verifications  # the token was not looked at


def test_expiry_is_honoured_through_the_memo() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token(ttl=timedelta(minutes=5)))
    admitted = admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(admitted, ToApp)
    expiry = admitted.identity.expires_at
    just_before = expiry - timedelta(microseconds=1)
    again = admit(head, now=just_before, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(again, ToApp)
    late = admit(head, now=expiry, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(late, Deny)
    assert late.reason == "expired"
    assert len(memo) == 0  # the stale entry is gone, and the failure left none


def test_a_clock_that_steps_back_gets_the_full_check() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token())
    admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    earlier = NOW - timedelta(seconds=1)
    again = admit(head, now=earlier, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(again, ToApp)
    assert memo.hits == 0
    # Before the token was issued (beyond the allowed skew) the full check refuses it.
    way_back = NOW - timedelta(hours=1)
    refused_ = admit(head, now=way_back, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(refused_, Deny)
    assert refused_.reason == "not_yet_valid"


def test_a_new_snapshot_that_revokes_the_session_refuses_it() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token(sid="sess-9"))
    first = admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert isinstance(first, ToApp)
    revoked = SINGLE.changed(serial=2, revoked_sessions=frozenset({SessionId("sess-9")}))
    after = admit(head, now=NOW, snapshot=revoked, verifier=verifier, memo=memo)
    assert isinstance(after, Deny)
    assert after.reason == "revoked"


def test_a_new_snapshot_empties_the_memo_even_with_the_same_content() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token())
    admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    same = SINGLE.changed(serial=2)
    again = admit(head, now=NOW, snapshot=same, verifier=verifier, memo=memo)
    assert isinstance(again, ToApp)
    assert memo.hits == 0


def test_a_sessions_update_keeps_the_memo_and_still_refuses_a_revoked_session() -> None:
    # Sessions reach their end several times a minute: each such update keeps the entries,
    # and an entry whose session the update lists is refused all the same.
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    mine = request(SINGLE, SINGLE.token(sid="sess-1"))
    other = request(SINGLE, SINGLE.token(sid="sess-2"))
    for head in (mine, other):
        assert isinstance(
            admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo), ToApp
        )
    ended = SINGLE.snapshot.with_sessions(
        serial=2, issued_at=NOW, revoked_sessions=frozenset({SessionId("sess-1")})
    )
    assert ended.basis is SINGLE.snapshot.basis
    still = admit(other, now=NOW, snapshot=ended, verifier=verifier, memo=memo)
    assert isinstance(still, ToApp)
    assert memo.hits == 1  # kept
    after = admit(mine, now=NOW, snapshot=ended, verifier=verifier, memo=memo)
    assert isinstance(after, Deny)
    assert after.reason == "revoked"
    assert len(memo) == 1


def test_a_users_update_empties_the_memo() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token())
    admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    renamed = SINGLE.snapshot.with_users(
        serial=2,
        issued_at=NOW,
        setup_done=True,
        users=dict(SINGLE.snapshot.users),
        revoked_sessions=frozenset(),
    )
    assert renamed.basis is not SINGLE.snapshot.basis
    admit(head, now=NOW, snapshot=renamed, verifier=verifier, memo=memo)
    assert memo.hits == 0


def test_a_removed_user_is_refused_after_the_new_snapshot() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token())
    admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    users = {k: v for k, v in SINGLE.snapshot.users.items() if k != UserId("user-1")}
    after = admit(head, now=NOW, snapshot=SINGLE.changed(serial=2, users=users), verifier=verifier)
    assert isinstance(after, Deny)
    after_memo = admit(
        head, now=NOW, snapshot=SINGLE.changed(serial=3, users=users), verifier=verifier, memo=memo
    )
    assert isinstance(after_memo, Deny)
    assert after_memo.reason == "unknown_user"


def test_a_revoked_session_is_refused_even_from_an_entry_of_the_same_snapshot() -> None:
    # The second line of defence: an entry can only be made for a session that was not revoked,
    # but a hit checks the revoked set again all the same.
    world = World("single-host", revoked_sessions=frozenset({SessionId("sess-1")}))
    memo = AdmissionMemo()
    verifier = CachedVerifier(world.keyring.public)
    head = request(world, world.token(sid="sess-1"))
    refused_ = admit(head, now=NOW, snapshot=world.snapshot, verifier=verifier, memo=memo)
    assert isinstance(refused_, Deny)
    assert len(memo) == 0
    app = world.snapshot.apps_by_slug[AppSlug("wiki")]
    ok = admit(
        request(world, world.token(sid="sess-2")),
        now=NOW,
        snapshot=world.snapshot,
        verifier=verifier,
    )
    assert isinstance(ok, ToApp)
    revoked_identity = type(ok.identity)(
        session_id=SessionId("sess-1"),
        user_id=ok.identity.user_id,
        app=ok.identity.app,
        admin=False,
        profile=ok.identity.profile,
        expires_at=ok.identity.expires_at,
    )
    key = ((f"lychgate={world.token(sid='sess-1')}",), None)
    memo.store(world.snapshot, key, NOW.timestamp(), app, revoked_identity)
    assert memo.lookup(world.snapshot, key, NOW.timestamp()) is None


def test_failures_are_never_remembered() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    for cookie in ("garbage", SINGLE.token(sid="revoked-sess"), SINGLE.token(app="nope")):
        result = admit(
            request(SINGLE, cookie), now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo
        )
        assert isinstance(result, Deny)
    assert len(memo) == 0


def test_several_cookie_values_are_always_decided_in_full() -> None:
    memo = AdmissionMemo()
    verifier = CachedVerifier(SINGLE.keyring.public)
    head = request(SINGLE, SINGLE.token(), "planted-garbage")
    for _ in range(2):
        result = admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
        assert isinstance(result, ToApp)
    assert len(memo) == 0
    assert memo.hits == 0


def test_the_routed_app_is_part_of_the_key() -> None:
    # subdomains: a token for wiki, presented on wiki's host and then on grafana's host.
    memo = AdmissionMemo()
    verifier = CachedVerifier(SUBS.keyring.public)
    token = SUBS.token(app="wiki")
    on_wiki = SUBS.head("/", cookies=[token], headers=FETCH)
    on_grafana = SUBS.head("/", host="metrics.corp.example", cookies=[token], headers=FETCH)
    assert isinstance(
        admit(on_wiki, now=NOW, snapshot=SUBS.snapshot, verifier=verifier, memo=memo), ToApp
    )
    other = admit(on_grafana, now=NOW, snapshot=SUBS.snapshot, verifier=verifier, memo=memo)
    assert isinstance(other, Deny)
    assert other.reason == "wrong_audience"


def test_the_memo_is_bounded() -> None:
    memo = AdmissionMemo(max_entries=2, max_key_chars=2000)
    verifier = CachedVerifier(SINGLE.keyring.public)
    heads = [request(SINGLE, SINGLE.token(sid=f"sess-{i}")) for i in range(3)]
    for head in heads:
        admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert len(memo) == 2
    admit(heads[0], now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert memo.hits == 0  # the oldest went first
    long = SINGLE.head("/", cookies=[SINGLE.token()], headers=(("cookie", "x=" + "y" * 3000),))
    for _ in range(2):  # cookie headers longer than max_key_chars are never remembered
        admit(long, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert (memo.hits, memo.misses, len(memo)) == (0, 6, 2)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(UsageError):
        AdmissionMemo(max_entries=0)
    with pytest.raises(UsageError):
        AdmissionMemo(max_key_chars=0)


# -- through the handler ------------------------------------------------------------------------


def test_handler_stops_forwarding_a_session_once_the_snapshot_revokes_it() -> None:
    clock = Clock()
    handler, holder = handler_for(SINGLE, clock)
    head = request(SINGLE, SINGLE.token(sid="sess-7"))
    for _ in range(3):  # admitted, then remembered
        assert isinstance(handler(head), Forward)
    holder.replace(SINGLE.changed(serial=2, revoked_sessions=frozenset({SessionId("sess-7")})))
    assert refused(handler(head))
    assert refused(handler(head))


def test_handler_stops_forwarding_a_session_that_a_sessions_update_revokes() -> None:
    clock = Clock()
    handler, holder = handler_for(SINGLE, clock)
    head = request(SINGLE, SINGLE.token(sid="sess-7"))
    for _ in range(3):
        assert isinstance(handler(head), Forward)
    current = holder.current
    assert current is not None
    ended = frozenset({SessionId("sess-7")})
    holder.replace(current.with_sessions(serial=2, issued_at=NOW, revoked_sessions=ended))
    assert refused(handler(head))
    assert refused(handler(head))


def test_handler_stops_forwarding_an_expired_token() -> None:
    clock = Clock()
    handler, _ = handler_for(SINGLE, clock)
    head = request(SINGLE, SINGLE.token(ttl=timedelta(minutes=2)))
    assert isinstance(handler(head), Forward)
    clock.now += timedelta(seconds=30)
    assert isinstance(handler(head), Forward)
    clock.now += timedelta(minutes=1)  # 2.5 minutes after issue: past the 2 minute ttl
    assert refused(handler(head))


def test_handler_forgets_admissions_when_the_keys_change() -> None:
    clock = Clock()
    handler, holder = handler_for(SINGLE, clock)
    head = request(SINGLE, SINGLE.token())
    assert isinstance(handler(head), Forward)
    holder.replace(World("single-host").snapshot)  # other keys: the token no longer verifies
    assert refused(handler(head))


def test_the_memo_is_bounded_in_characters_too() -> None:
    token_chars = len(f"lychgate={SINGLE.token()}")
    memo = AdmissionMemo(max_key_chars=token_chars + 10, max_total_chars=2 * token_chars + 10)
    verifier = CachedVerifier(SINGLE.keyring.public)
    heads = [request(SINGLE, SINGLE.token(sid=f"sess-{i}")) for i in range(3)]
    for head in heads:
        admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert len(memo) == 2
    for head in heads[1:]:
        admit(head, now=NOW, snapshot=SINGLE.snapshot, verifier=verifier, memo=memo)
    assert memo.hits == 2
    with pytest.raises(UsageError):
        AdmissionMemo(max_key_chars=100, max_total_chars=99)
