"""The reader's own page, the domain side: rename, pause, address changes, export, erase, leave."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.errors import Conflict, Invalid
from newsletter.extensions import db
from newsletter.models import (
    ConfirmLimit,
    DailyStat,
    EventKind,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    utcnow,
)
from newsletter.services import tokens
from newsletter.subscribers import manage, state
from newsletter.subscribers.links import AddressClaim, TokenError, TokenExpired
from newsletter.tasks import manage as jobs
from tests.helpers import links, override_settings
from tests.helpers.readers import db_snapshot

S = SubscriberStatus


def _kinds(sub_id: int) -> list[str]:
    return [
        k.value
        for k in db.session.scalars(
            sa.select(SubscriberEvent.kind)
            .where(SubscriberEvent.subscriber_id == sub_id)
            .order_by(SubscriberEvent.id)
        )
    ]


def _stat(kind: str) -> int:
    return int(
        db.session.scalar(sa.select(sa.func.sum(DailyStat.count)).where(DailyStat.kind == kind))
        or 0
    )


# --- the name ------------------------------------------------------------------------------------


def test_rename_keeps_a_history_line_and_refuses_line_breaks_and_huge_names(app, make_subscriber):
    sub = make_subscriber("ann@example.com", name="Ann")
    assert manage.rename(db.session(), sub, "  Ann Lee ") is True
    db.session.commit()
    assert sub.name == "Ann Lee" and _kinds(sub.id) == ["renamed"]
    assert manage.rename(db.session(), sub, "Ann Lee") is False  # nothing to change
    for bad in ("Ann\r\nBcc: x@example.com", "Ann\nLee", "x" * 10_000):
        with pytest.raises(Invalid) as caught:
            manage.rename(db.session(), sub, bad)
        assert caught.value.field == "name"
    db.session.rollback()
    db.session.refresh(sub)
    assert sub.name == "Ann Lee" and _kinds(sub.id) == ["renamed"]


# --- pausing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["0", "13", "99", "-1", "", "abc", "4.5", "１", None, "0012"])
def test_only_one_to_twelve_weeks_is_a_pause(raw):
    with pytest.raises(Invalid) as caught:
        manage.parse_weeks(raw)
    assert caught.value.field == "weeks" and "1 to 12 weeks" in caught.value.message


def test_a_pause_lasts_the_weeks_chosen_and_resume_ends_it(app, make_subscriber):
    sub = make_subscriber("bo@example.com")
    now = utcnow()
    until = manage.pause(db.session(), sub, manage.parse_weeks(" 12 "), now=now)
    db.session.commit()
    assert until == now + timedelta(weeks=12) and sub.paused_until == until
    assert manage.paused_until(sub, now) == until
    assert manage.paused_until(sub, until + timedelta(seconds=1)) is None  # over by itself
    assert sub.status is S.CONFIRMED  # a pause is no status change
    assert manage.resume(db.session(), sub) is True
    assert manage.resume(db.session(), sub) is False
    db.session.commit()
    assert sub.paused_until is None
    assert _kinds(sub.id) == ["paused", "resumed"]
    assert _stat(manage.PAUSED_STAT) == 1


def test_only_a_subscribed_reader_can_pause(app, make_subscriber):
    for status in ("pending", "unsubscribed", "bounced"):
        sub = make_subscriber(f"{status}@example.com", status=status)
        with pytest.raises(Conflict):
            manage.pause(db.session(), sub, 2)
        with pytest.raises(Invalid):
            manage.pause(db.session(), sub, 0)
        db.session.rollback()
        assert db.session.get(Subscriber, sub.id).paused_until is None


# --- leaving -------------------------------------------------------------------------------------


def test_an_unsubscribe_counts_its_reason_once_and_ends_a_pause(app, make_subscriber):
    sub = make_subscriber("cy@example.com")
    manage.pause(db.session(), sub, 3)
    db.session.commit()
    reason = manage.parse_reason("too_many")
    assert manage.unsubscribe(db.session(), sub.id, reason=reason, detail="page") is sub
    manage.unsubscribe(db.session(), sub.id, reason=reason, detail="page")  # pressed twice
    db.session.commit()
    assert sub.status is S.UNSUBSCRIBED and sub.paused_until is None
    assert _stat("why:too_many") == 1
    line = db.session.scalar(
        sa.select(SubscriberEvent.detail).where(SubscriberEvent.kind == EventKind.UNSUBSCRIBED)
    )
    assert line == "page, too_many"


def test_a_reason_we_never_offered_is_ignored_and_the_reader_still_leaves(app, make_subscriber):
    assert manage.parse_reason("x" * 10_000) is None
    assert manage.parse_reason("") is None and manage.parse_reason(None) is None
    sub = make_subscriber("di@example.com")
    manage.unsubscribe(db.session(), sub.id, reason=manage.parse_reason("spam'; --"))
    db.session.commit()
    assert sub.status is S.UNSUBSCRIBED
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(DailyStat)
            .where(DailyStat.kind.startswith("why:"))
        )
        == 0
    )
    assert manage.unsubscribe(db.session(), 10**6) is None  # erased: nothing to do


# --- erasing -------------------------------------------------------------------------------------


def test_erase_needs_the_readers_own_address_typed(app, make_subscriber):
    sub = make_subscriber("eve@example.com")
    other = make_subscriber("mallory@example.com")
    before = db_snapshot()
    for typed in ("", "mallory@example.com", "eve@example.org", "eve", "x" * 10_000, None):
        with pytest.raises(Invalid):
            manage.erase_reader(db.session(), sub, typed)
        db.session.rollback()
    assert db_snapshot() == before
    manage.erase_reader(db.session(), db.session.get(Subscriber, sub.id), "  EVE@Example.com ")
    db.session.commit()
    assert db.session.get(Subscriber, sub.id) is None
    assert db.session.get(Subscriber, other.id) is not None
    assert _stat(manage.ERASED_STAT) == 1


# --- changing the address ------------------------------------------------------------------------


def test_an_address_change_waits_for_the_new_address_to_confirm(app, make_subscriber):
    sub = make_subscriber("fay@example.com")
    now = utcnow()
    asked = manage.request_address_change(db.session(), sub, " Fay.New@Example.com ", now=now)
    db.session.commit()
    assert asked.due_at == now and sub.new_email == "fay.new@example.com"
    assert sub.email == "fay@example.com"  # nothing changes before the confirmation
    claim = AddressClaim(sub.id, sub.version, "fay.new@example.com")
    assert manage.address_link_state(db.session(), claim) is None
    change = manage.confirm_address_change(db.session(), claim, now=now)
    db.session.commit()
    assert change.outcome is manage.AddressOutcome.CHANGED and change.notice_due_at == now
    db.session.refresh(sub)
    assert (sub.email, sub.new_email, sub.old_email) == (
        "fay.new@example.com",
        None,
        "fay@example.com",
    )
    assert sub.status is S.CONFIRMED and _kinds(sub.id) == ["address_changed"]
    # The same link again does nothing more.
    again = manage.confirm_address_change(db.session(), claim)
    assert again.outcome is manage.AddressOutcome.ALREADY and again.notice_due_at is None


def test_an_address_already_on_the_list_stores_and_reserves_nothing(app, make_subscriber):
    sub = make_subscriber("gus@example.com")
    make_subscriber("taken@example.com", status="unsubscribed", name="Taken")
    before = db_snapshot()
    asked = manage.request_address_change(db.session(), sub, "TAKEN@example.com")
    db.session.commit()
    assert asked.due_at is None
    assert db_snapshot() == before
    db.session.refresh(sub)
    assert sub.new_email is None and sub.new_email_due_at is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConfirmLimit)) == 0


def test_bad_or_unchanged_addresses_are_refused(app, make_subscriber):
    sub = make_subscriber("hal@example.com")
    for bad in (
        "",
        "not-an-address",
        "a@b@example.com",
        "x" * 300 + "@example.com",
        "hal@example.com\r\nBcc: x@example.com",
        "HAL@example.com",
    ):
        with pytest.raises(Invalid) as caught:
            manage.request_address_change(db.session(), sub, bad)
        assert caught.value.field == "email"
    db.session.rollback()
    assert db.session.get(Subscriber, sub.id).new_email is None


def test_one_inbox_gets_at_most_one_address_link_per_cooldown(app, make_subscriber):
    sub = make_subscriber("ida@example.com")
    first = manage.request_address_change(db.session(), sub, "ida2@example.com")
    second = manage.request_address_change(db.session(), sub, "ida2+x@example.com")
    db.session.commit()
    assert first.due_at is not None and second.due_at is None
    assert sub.new_email == "ida2@example.com"  # the refused request changed nothing


def test_an_address_taken_after_the_request_is_not_stolen(app, make_subscriber):
    sub = make_subscriber("jo@example.com")
    manage.request_address_change(db.session(), sub, "jo2@example.com")
    db.session.commit()
    claim = AddressClaim(sub.id, sub.version, "jo2@example.com")
    rival = make_subscriber("jo2@example.com", status="pending", name="Rival")
    change = manage.confirm_address_change(db.session(), claim)
    db.session.commit()
    assert change.outcome is manage.AddressOutcome.TAKEN and change.notice_due_at is None
    db.session.expire_all()
    mine, theirs = db.session.get(Subscriber, sub.id), db.session.get(Subscriber, rival.id)
    assert (mine.email, mine.new_email, mine.old_email) == ("jo@example.com", None, None)
    assert (theirs.email, theirs.name, theirs.status) == ("jo2@example.com", "Rival", S.PENDING)
    assert _kinds(sub.id) == []


def test_a_later_request_or_status_change_makes_a_link_stale(app, make_subscriber):
    sub = make_subscriber("kim@example.com")
    manage.request_address_change(db.session(), sub, "kim1@example.com")
    first = AddressClaim(sub.id, sub.version, "kim1@example.com")
    manage.request_address_change(db.session(), sub, "kim2@example.net")
    db.session.commit()
    assert manage.confirm_address_change(db.session(), first).outcome is manage.AddressOutcome.STALE
    second = AddressClaim(sub.id, sub.version, "kim2@example.net")
    manage.unsubscribe(db.session(), sub.id)
    db.session.commit()
    assert manage.address_link_state(db.session(), second) is manage.AddressOutcome.STALE
    assert (
        manage.address_link_state(db.session(), AddressClaim(10**6, 1, "x@example.com"))
        is manage.AddressOutcome.UNKNOWN
    )
    db.session.rollback()
    assert db.session.get(Subscriber, sub.id).email == "kim@example.com"


def test_address_tokens_have_their_own_salt_and_expire(app, monkeypatch):
    t = tokens()
    token = t.address_token(7, 3, "new@example.com")
    assert t.read_address(token, 60) == AddressClaim(7, 3, "new@example.com")
    for other in (
        t.manage_token(7, utcnow(), "old@example.com"),
        t.unsubscribe_token(7),
        t.confirm_token(7, 3),
        token + "x",
    ):
        with pytest.raises(TokenError):
            t.read_address(other, 60)
    with pytest.raises(TokenError):
        t.read_manage(token)
    real = __import__("time").time
    monkeypatch.setattr("time.time", lambda: real() - 3600)
    old = t.address_token(7, 3, "new@example.com")
    monkeypatch.undo()
    with pytest.raises(TokenExpired):
        t.read_address(old, 60)


# --- their data ----------------------------------------------------------------------------------


def test_the_export_holds_profile_history_deliveries_and_bounces(app, make_subscriber):
    sub = make_subscriber("lu@example.com", name="Lu")
    manage.rename(db.session(), sub, "Lu Xun")
    manage.pause(db.session(), sub, 2)
    db.session.commit()
    data = manage.export(db.session(), sub)
    assert data["profile"]["email"] == "lu@example.com" and data["profile"]["name"] == "Lu Xun"
    assert data["profile"]["status"] == "confirmed" and data["profile"]["paused_until"]
    assert [h["kind"] for h in data["history"]] == ["renamed", "paused"]
    assert data["deliveries"] == [] and data["bounces"] == []


# --- the mail jobs and their rebuild -------------------------------------------------------------


def test_the_address_mails_go_to_the_new_then_the_old_address(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("mo@example.com", name="Mo")
    asked = manage.request_address_change(db.session(), sub, "mo2@example.com")
    db.session.commit()
    jobs.queue_address_confirmation(sub.id, asked.due_at)
    jobs.queue_address_confirmation(sub.id, asked.due_at)  # a double enqueue is one job
    assert run_jobs() == 1
    (link_mail,) = inbox.wait_for(1)
    assert inbox.envelopes[0][1] == ["mo2@example.com"]
    url = next(u for u in links(link_mail) if "/manage/address/" in u)
    claim = tokens().read_address(url.rsplit("/", 1)[1], 3600)
    assert claim == AddressClaim(sub.id, sub.version, "mo2@example.com")
    assert db.session.get(Subscriber, sub.id).new_email_due_at is None  # settled
    change = manage.confirm_address_change(db.session(), claim)
    db.session.commit()
    jobs.queue_address_notice(sub.id, change.notice_due_at)
    assert run_jobs() == 1
    notice = inbox.wait_for(2)[1]
    assert inbox.envelopes[1][1] == ["mo@example.com"]
    assert "mo2@example.com" in str(notice.get_body(preferencelist=("plain",)).get_content())
    db.session.expire_all()
    sub = db.session.get(Subscriber, sub.id)
    assert sub.old_email is None and sub.old_email_due_at is None  # not kept once told


def test_the_reconciler_rebuilds_address_mails_redis_lost(app, make_subscriber, run_jobs, inbox):
    override_settings(app, reconcile_interval=0)
    sub = make_subscriber("ned@example.com")
    manage.request_address_change(
        db.session(), sub, "ned2@example.com", now=utcnow() - timedelta(minutes=5)
    )
    other = make_subscriber("ola@example.net")
    other.old_email, other.old_email_due_at = "ola-old@example.net", utcnow() - timedelta(minutes=5)
    gone = make_subscriber("pat@example.com")
    gone.old_email, gone.old_email_due_at = "pat-old@example.com", utcnow() - timedelta(days=2)
    db.session.commit()
    assert jobs.reconcile() == 2  # nothing was ever enqueued: both are rebuilt
    assert jobs.reconcile() == 0  # and not twice
    assert run_jobs() == 2
    inbox.wait_for(2)
    assert sorted(r[0] for _f, r in inbox.envelopes) == ["ned2@example.com", "ola-old@example.net"]
    db.session.expire_all()
    # Owed for too long: given up, and the old address not kept.
    assert db.session.get(Subscriber, gone.id).old_email is None
    assert jobs.reconcile() == 0


def test_no_link_goes_to_an_address_someone_took_after_the_request(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("quin@example.com")
    asked = manage.request_address_change(db.session(), sub, "quin2@example.com")
    db.session.commit()
    make_subscriber("quin2@example.com", status="pending")
    jobs.queue_address_confirmation(sub.id, asked.due_at)
    assert run_jobs() == 1
    assert inbox.messages == []
    assert db.session.get(Subscriber, sub.id).new_email_due_at is None  # nothing owed any more


def test_a_pause_ends_with_the_subscription_whichever_way_the_reader_left(app, make_subscriber):
    for leave in ("unsubscribe", "bounce"):
        sub = make_subscriber(f"{leave}@example.com")
        manage.pause(db.session, sub, 4)
        db.session.commit()
        assert sub.paused_until is not None
        getattr(state, leave)(db.session, sub.id)
        db.session.commit()
        db.session.refresh(sub)
        assert sub.paused_until is None, leave
