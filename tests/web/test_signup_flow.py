"""Signing up as a room of people, a script, a returning reader and another site would."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import timedelta

import sqlalchemy as sa
from altcha.v1 import solve_challenge
from flask import g

from newsletter.extensions import db, settings
from newsletter.models import ConfirmLimit, Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from newsletter.subscribers import proof
from tests.helpers import truncate_all
from tests.helpers.readers import link_to, outcome, post_form, subscribe, subscriber

S = SubscriberStatus
WORKSHOP_IP = "198.51.100.40"


def _count() -> int:
    found = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) or 0
    db.session.commit()
    return found


def _room_client(app, ip: str = WORKSHOP_IP):
    # The test's app context is shared by every request, and Flask-WTF caches the CSRF token
    # on g: a new browser must not be handed another one's.
    g.pop("csrf_token", None)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _challenge_of(answer) -> dict:
    found = re.search(r'data-challenge="([^"]+)"', answer.get_data(as_text=True))
    assert found, "the page asks for no proof of work"
    return json.loads(html.unescape(found.group(1)))


def _solve(challenge: dict, **change) -> str:
    solution = solve_challenge(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert solution is not None
    fields = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": solution.number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
        **change,
    }
    return base64.b64encode(json.dumps(fields).encode()).decode()


def test_a_workshop_of_45_signs_up_from_one_address_within_a_minute(app, run_jobs, inbox):
    for n in range(45):
        client = _room_client(app)  # each person their own laptop, one Wi-Fi
        assert outcome(post_form(client, f"person{n}@company.example", f"Person {n}")) == "accepted"
    assert _count() == 45
    assert run_jobs() == 45
    assert sorted(m["To"] for m in inbox.wait_for(45)) == sorted(
        f"person{n}@company.example" for n in range(45)
    )


def test_refused_input_does_not_count_and_past_the_limit_proof_of_work_lets_people_in(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="3/600")
    with app.app_context():
        truncate_all()
        client = _room_client(app)
        for bad in ("not-an-address", "", "a@b@c", "x" * 300):
            assert post_form(client, bad).status_code == 400
        for n in range(5):  # bots filling the honeypot are answered as usual, never counted
            assert outcome(post_form(client, f"bot{n}@example.com", website="x")) == "accepted"
        for n in range(3):
            assert outcome(post_form(client, f"p{n}@example.com")) == "accepted"
        assert _count() == 3

        asked = post_form(client, "fourth@example.com", "Fourth")
        assert outcome(asked) == "proof"
        assert "fourth@example.com" in asked.get_data(as_text=True)
        assert "script-src 'self'" in asked.headers["Content-Security-Policy"]
        assert subscriber("fourth@example.com") is None  # asked, not refused, not stored

        payload = _solve(_challenge_of(asked))
        solved = post_form(client, "fourth@example.com", "Fourth", altcha=payload)
        assert outcome(solved) == "accepted"
        assert subscriber("fourth@example.com").name == "Fourth"

        # A solution counts once, also for another address or another client.
        client = _room_client(app)  # another laptop in the room
        again = post_form(client, "fifth@example.com", altcha=payload)
        assert outcome(again) == "proof"
        challenge = _challenge_of(post_form(client, "fifth@example.com"))
        for forged in (
            _solve(challenge, number=challenge["maxNumber"] + 1),
            _solve(challenge, signature="0" * 64),
            _solve(challenge, salt="other?expires=9999999999&"),
            "not base64 at all",
            base64.b64encode(b"[1, 2]").decode(),
            "A" * 5000,
        ):
            assert outcome(post_form(client, "fifth@example.com", altcha=forged)) == "proof"
        assert subscriber("fifth@example.com") is None

        # Someone on another network is not asked anything.
        assert outcome(post_form(_room_client(app, "203.0.113.9"), "else@example.com")) == (
            "accepted"
        )


def test_an_expired_challenge_is_asked_again(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="1/600")
    with app.app_context():
        truncate_all()
        client = _room_client(app)
        assert outcome(post_form(client, "one@example.com")) == "accepted"
        assert outcome(post_form(client, "two@example.com")) == "proof"
        old = proof.challenge(settings(app).secret_key, utcnow() - proof.VALID_FOR * 2)
        assert outcome(post_form(client, "two@example.com", altcha=_solve(old))) == "proof"
        fresh = proof.challenge(settings(app).secret_key)
        assert outcome(post_form(client, "two@example.com", altcha=_solve(fresh))) == "accepted"


def test_the_api_answers_429_with_retry_after_past_the_limit(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="2/600")
    with app.app_context():
        truncate_all()
        client = _room_client(app)
        assert client.post("/api/v1/subscribe", json={"email": "nope"}).status_code == 422
        for n in range(2):
            answer = client.post("/api/v1/subscribe", json={"email": f"api{n}@example.com"})
            assert answer.status_code == 202
        refused = client.post("/api/v1/subscribe", json={"email": "api9@example.com"})
        assert refused.status_code == 429
        assert refused.json["error"]["code"] == "rate_limited"
        assert 0 < int(refused.headers["Retry-After"]) <= 600
        assert subscriber("api9@example.com") is None


def test_subscribing_again_right_after_leaving_sends_the_link_at_once(app, client, run_jobs, inbox):
    subscribe(client, "back@example.com", "Back")
    assert run_jobs() == 1
    client.get(link_to(inbox.wait_for(1)[0], "/confirm/"))  # one click, this browser
    assert subscriber("back@example.com").status is S.CONFIRMED
    run_jobs()  # the welcome
    sub = subscriber("back@example.com")
    client.post(f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}")
    assert subscriber("back@example.com").status is S.UNSUBSCRIBED

    subscribe(client, "back@example.com", "Back")  # a minute later, not ten
    assert run_jobs() == 1
    confirmations = [m for m in inbox.to("back@example.com") if "/confirm/" in m.as_string()]
    assert len(confirmations) == 2
    client.get(link_to(confirmations[-1], "/confirm/"))
    assert subscriber("back@example.com").status is S.CONFIRMED


def test_the_check_inbox_page_names_the_address_and_a_reload_sends_nothing(
    app, client, run_jobs, inbox
):
    answer = post_form(client, "Casey+News@Example.com", "Casey")
    assert outcome(answer) == "accepted"
    page = client.get("/check-inbox").get_data(as_text=True)
    assert (
        "casey+news@example.com" in page
        and "Wrong address?" in page
        and "Send the link again" in page
    )
    for _ in range(3):  # reloading is a GET of the page, never the form again
        assert client.get("/check-inbox").status_code == 200
    assert _count() == 1
    assert run_jobs() == 1

    # "Send it again" at once: this browser is told to wait, and nothing more is sent.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    again = client.post("/check-inbox/resend", data={"csrf_token": token}, follow_redirects=True)
    assert "ask again in a few minutes" in again.get_data(as_text=True)
    assert run_jobs() == 0
    # Ten minutes on, it sends one more.
    with client.session_transaction() as session:
        session["signup"] = {**session["signup"], "at": session["signup"]["at"] - 601}
    for row in db.session.scalars(sa.select(ConfirmLimit)):
        row.last_at -= timedelta(minutes=11)
    db.session.commit()
    again = client.post("/check-inbox/resend", data={"csrf_token": token}, follow_redirects=True)
    assert "We sent the link again" in again.get_data(as_text=True)
    assert run_jobs() == 1
    assert len(inbox.to("casey+news@example.com")) == 2

    # "Wrong address?" goes back to the form, filled in, to be corrected.
    back = client.post("/check-inbox/change", data={"csrf_token": token})
    assert back.status_code == 303
    form = client.get(back.headers["Location"]).get_data(as_text=True)
    assert 'value="casey+news@example.com"' in form
    assert "casey+news@example.com" not in client.get("/check-inbox").get_data(as_text=True)


def test_the_browser_that_signed_up_confirms_on_get_and_no_other(app, client, run_jobs, inbox):
    subscribe(client, "dee@example.com", "Dee")
    assert run_jobs() == 1
    link = link_to(inbox.wait_for(1)[0], "/confirm/")
    other = app.test_client()
    subscribe(other, "someone-else@example.com")  # a cookie, but for another address
    for stranger in (app.test_client(), other):
        page = stranger.get(link)
        assert page.status_code == 200 and "Confirm my subscription" in page.get_data(as_text=True)
    assert subscriber("dee@example.com").status is S.PENDING
    done = client.get(link)
    assert "You're subscribed" in done.get_data(as_text=True)
    assert 'href="/manage/' in done.get_data(as_text=True)
    assert subscriber("dee@example.com").status is S.CONFIRMED
    # The cookie tells a reader of it nothing: no address, no id.
    cookie = client.get_cookie("signup_pending", path="/confirm")
    assert cookie is None or "dee" not in base64.urlsafe_b64decode(cookie.value + "===").decode(
        "latin-1"
    )


def test_the_embedded_form_takes_a_plain_cross_site_post(app, run_jobs, inbox):
    blog = app.test_client(use_cookies=False)
    answer = blog.post(
        "/embed/subscribe",
        data={"email": "fan@example.com", "name": "Fan"},
        headers={"Origin": "https://blog.example.org"},
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
    assert subscriber("fan@example.com").source == "embed"
    as_json = blog.post(
        "/embed/subscribe",
        data={"email": "json@example.com"},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 202 and as_json.json["status"] == "accepted"
    assert run_jobs() == 2

    before = _count()
    for bad in (
        {"email": "x@example.com", "name": "n" * 10_000},
        {"email": "x@example.com", "name": "Line\r\nBcc: victim@example.com"},
        {"email": "not an address"},
    ):
        page = blog.post("/embed/subscribe", data=bad)
        assert page.status_code == 400 and "<form" in page.get_data(as_text=True)
        data = blog.post("/embed/subscribe", data=bad, headers={"Accept": "application/json"})
        assert data.status_code == 400 and data.json["error"] == "invalid"
    # JSON is for POST /api/v1/subscribe: here it is refused, never read as an empty form.
    for body in ({"email": 5}, {"email": "json@example.com"}):
        refused = blog.post("/embed/subscribe", json=body)
        assert refused.status_code == 415 and "/api/v1/subscribe" in refused.json["message"]
    assert _count() == before


def test_embed_origins_limit_who_may_post_and_who_may_call_the_api(make_app):
    app = make_app(EMBED_ORIGINS="https://blog.example.org, http://127.0.0.1:9999")
    with app.app_context():
        truncate_all()
        browser = app.test_client(use_cookies=False)
        refused = browser.post(
            "/embed/subscribe",
            data={"email": "x@example.com"},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403 and subscriber("x@example.com") is None
        ok = browser.post(
            "/embed/subscribe",
            data={"email": "x@example.com"},
            headers={"Origin": "https://blog.example.org"},
        )
        assert ok.status_code == 303

        preflight = browser.options(
            "/api/v1/subscribe",
            headers={
                "Origin": "https://blog.example.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://blog.example.org"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        call = browser.post(
            "/api/v1/subscribe",
            json={"email": "api@example.com"},
            headers={"Origin": "https://blog.example.org"},
        )
        assert call.status_code == 202
        assert call.headers["Access-Control-Allow-Origin"] == "https://blog.example.org"
        foreign = browser.post(
            "/api/v1/subscribe",
            json={"email": "api2@example.com"},
            headers={"Origin": "https://evil.example"},
        )
        assert "Access-Control-Allow-Origin" not in foreign.headers
