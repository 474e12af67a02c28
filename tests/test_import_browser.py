"""CSV import from the editor's browser: upload, a worker runs it, progress and a report."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import ImportJob, Subscriber, SubscriberStatus
from tests.conftest import csrf_from
from tests.people_helpers import editor_client

CSV = (
    "email,name\n"
    "ada@example.com,Ada\n"
    "not-an-address,Bad One\n"
    "grace@example.com,Grace\n"
    ",No Address\n"
    'bob@example.com,"Bob\nBroken"\n'
    "carl@example.com,Carl\n"
)


def upload(client, text: str | bytes, mode: str = "confirmed", name: str = "people.csv"):
    token = csrf_from(client.get("/editor/import").text)
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        "/editor/import",
        data={"csrf_token": token, "mode": mode, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_upload_runs_in_a_worker_and_reports_bad_rows_by_line(app, run_jobs):
    client = editor_client(app)
    response = upload(client, CSV)
    assert response.status_code == 302
    status_url = response.headers["Location"]
    waiting = client.get(status_url).text
    assert "Waiting for a worker" in waiting and 'role="progressbar"' in waiting
    assert client.get(status_url + ".json").get_json()["status"] == "queued"

    assert run_jobs() >= 1
    progress = client.get(status_url + ".json").get_json()
    assert progress["status"] == "done" and progress["percent"] == 100
    assert progress["done_rows"] == progress["total_rows"] == 6
    report = client.get(status_url).text
    bad = dict(re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", report))
    assert set(bad) == {"3", "5", "6"}  # the header is line 1; Bob's row starts on line 6
    assert "not valid" in bad["3"] and "line breaks" in bad["6"]
    assert "3 added" in report and "3 bad rows skipped" in report
    emails = db.session.scalars(sa.select(Subscriber.email).order_by(Subscriber.email)).all()
    assert emails == ["ada@example.com", "carl@example.com", "grace@example.com"]
    assert all(
        s.status is SubscriberStatus.CONFIRMED for s in db.session.scalars(sa.select(Subscriber))
    )
    assert db.session.scalar(sa.select(ImportJob.csv_text)) is None  # the file is not kept


def test_reimporting_is_harmless_and_keeps_unsubscribed_people_out(app, run_jobs):
    client = editor_client(app)
    upload(client, CSV)
    run_jobs()
    carl = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "carl@example.com"))
    carl.status = SubscriberStatus.UNSUBSCRIBED
    db.session.commit()
    second = upload(client, CSV)
    run_jobs()
    report = client.get(second.headers["Location"]).text
    assert "0 added" in report and "3 already there" in report
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 3
    db.session.expire_all()
    assert db.session.get(Subscriber, carl.id).status is SubscriberStatus.UNSUBSCRIBED


def test_send_a_confirmation_mails_each_new_person(app, run_jobs, inbox):
    client = editor_client(app)
    response = upload(
        client, "Email,Name\nnew1@example.com,N1\nnew2@example.com,N2\n", mode="confirm"
    )
    run_jobs()
    inbox.wait_for(2)
    assert sorted(a for m in inbox.messages for a in [m["To"]]) == [
        "new1@example.com",
        "new2@example.com",
    ]
    assert all(
        s.status is SubscriberStatus.PENDING for s in db.session.scalars(sa.select(Subscriber))
    )
    assert "2 confirmation mails queued" in client.get(response.headers["Location"]).text


def test_unusable_files_are_refused_with_a_clear_message(app):
    client = editor_client(app)
    cases = [
        ("name,phone\nAda,1\n", "no &#39;email&#39; column"),
        ("", "empty"),
        (b"\xff\xfeemail\n", "not UTF-8"),
    ]
    for text, message in cases:
        response = upload(client, text)
        assert response.status_code == 400 and message in response.text
    no_choice = upload(client, CSV, mode="maybe")
    assert no_choice.status_code == 400 and "opted in" in no_choice.text
    token = csrf_from(client.get("/editor/import").text)
    no_file = client.post("/editor/import", data={"csrf_token": token, "mode": "confirmed"})
    assert no_file.status_code == 400 and "Choose a CSV file" in no_file.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportJob)) == 0
    assert client.get("/editor/import/12345").status_code == 404
