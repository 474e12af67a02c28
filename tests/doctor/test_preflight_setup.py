"""Preflight names the doctor's SPF, DKIM and DMARC verdict for the sending domain: asked of a
real DNS server in a job (the page never waits on DNS), a bad one a warning to override."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Delivery, Subscriber, SubscriberStatus
from newsletter.tasks.worker import build_worker
from tests.doctor.world import public_record, publish_everything
from tests.helpers import truncate_all
from tests.helpers.editors import editor_client, page_token, post_form


@pytest.fixture
def site(make_app, dns_server, zone, dkim_pem):
    app = make_app(
        DNS_NAMESERVER=dns_server.address,
        SMTP_HOST="127.0.0.1",
        MAIL_FROM="Example Tips <tips@example.com>",
        DKIM_DOMAIN="example.com",
        DKIM_SELECTOR="tips",
        DKIM_PRIVATE_KEY=dkim_pem,
    )
    with app.app_context():
        truncate_all()
        db.session.add(Subscriber(email="ana@example.net", status=SubscriberStatus.CONFIRMED))
        db.session.commit()
        yield app
        db.session.rollback()


def run_jobs(app) -> int:
    """Run every queued job of ``app`` with a real worker; return how many ran."""
    db.session.commit()
    worker = build_worker(app)
    worker.work(burst=True, with_scheduler=False)
    db.session.expire_all()
    return worker.jobs_done


def queued(issue_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
    )


def test_a_healthy_domain_is_said_ok_and_the_send_goes(site, zone, dkim_keys):
    publish_everything(zone, dkim_keys[0])
    client = editor_client(site)
    issue = create_issue("Clean tip", "Use `git switch -`.")
    url = f"/editor/issues/{issue.id}"
    first = client.get(url).get_data(as_text=True)
    # The page answers at once; the lookups wait for the job.
    assert "Checking the sending domain's SPF, DKIM and DMARC…" in first
    assert run_jobs(site) >= 1
    page = client.get(url).get_data(as_text=True)
    assert "SPF, DKIM and DMARC: ok." in page and "Checking the sending" not in page
    assert 'name="anyway"' not in page
    assert post_form(client, url, f"{url}/send").status_code == 302
    assert queued(issue.id) == 1


def test_a_failing_verdict_warns_and_the_editor_may_send_anyway(site, zone, dkim_keys, inbox):
    # A DKIM key that is not ours, no DMARC record; SPF is fine.
    zone.txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
    zone.txt("tips._domainkey.example.com", public_record(dkim_keys[1]))
    client = editor_client(site)
    issue = create_issue("Tip", "Body")
    url = f"/editor/issues/{issue.id}"
    token = page_token(client, url)
    asked = client.post(f"{url}/mail-setup", data={"csrf_token": token}).get_json()
    assert asked == {"state": "checking", "warnings": [], "note": ""}
    run_jobs(site)
    polled = client.post(f"{url}/mail-setup", data={"csrf_token": token}).get_json()
    assert polled["state"] == "done" and len(polled["warnings"]) == 2
    dkim, dmarc = polled["warnings"]
    assert dkim.startswith("DKIM") and dmarc.startswith("DMARC: no DMARC record at _dmarc.")
    page = client.get(url).get_data(as_text=True)
    assert "<strong>Warning:</strong> DMARC: no DMARC record" in page
    assert "Sending health says how to fix it" in page and 'name="anyway"' in page
    # A test copy is never held up by a warning.
    assert post_form(client, url, f"{url}/test", to="me@example.net").status_code == 302
    assert len(inbox.messages) == 1
    refused = post_form(client, url, f"{url}/send")
    assert refused.status_code == 409
    assert "DMARC: no DMARC record" in refused.get_data(as_text=True)
    assert queued(issue.id) == 0
    sent = post_form(client, url, f"{url}/send", anyway="1")
    assert sent.status_code == 302
    assert "Sent anyway despite:" in client.get(url).get_data(as_text=True)
    assert queued(issue.id) == 1


def test_without_a_dns_server_the_page_says_not_checked_and_holds_nothing(make_app):
    app = make_app()  # testing, no DNS_NAMESERVER: no resolver is ever asked
    with app.app_context():
        truncate_all()
        client = editor_client(app)
        issue = create_issue("Tip", "Body")
        url = f"/editor/issues/{issue.id}"
        client.get(url)
        run_jobs(app)
        page = client.get(url).get_data(as_text=True)
        assert "SPF, DKIM and DMARC not checked:" in page and 'name="anyway"' not in page
        db.session.rollback()
