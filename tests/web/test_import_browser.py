"""CSV import from the editor's browser: upload, a worker runs it, progress and a report."""

from __future__ import annotations

import io
import re
from pathlib import Path

import sqlalchemy as sa

from newsletter.extensions import db, settings
from newsletter.models import ImportJob, Subscriber, SubscriberStatus
from tests.helpers import csrf_from, override_settings
from tests.helpers.editors import editor_client

CSV = (
    "email,name\n"
    "ada@example.com,Ada\n"
    "not-an-address,Bad One\n"
    "grace@example.com,Grace\n"
    ",No Address\n"
    'bob@example.com,"Bob\nBroken"\n'
    "carl@example.com,Carl\n"
)


def upload(
    client, text: str | bytes, mode: str = "confirmed", name: str = "people.csv", **fields: str
):
    """Upload a file, then start it from the column check (the answer to the upload if refused)."""
    token = csrf_from(client.get("/editor/import").text)
    data = text.encode() if isinstance(text, str) else text
    checked = client.post(
        "/editor/import",
        data={"csrf_token": token, "mode": mode, "file": (io.BytesIO(data), name), **fields},
        content_type="multipart/form-data",
    )
    if checked.status_code != 302:
        return checked
    check = client.get(checked.headers["Location"]).text
    start = re.search(r'action="(/editor/import/\d+/start)"', check)
    assert start, check
    return client.post(start.group(1), data={"csrf_token": csrf_from(check)})


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
    assert "needs an @" in bad["3"] and "line breaks" in bad["6"]
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
        ("name,phone\nAda,1\n", "no email column"),
        ("", "empty"),
        (b"\xff\xfeemail\n", "no email column"),  # says UTF-16, is not
        (b"email,name\n\x00\x01,x\n", "not a CSV text file"),
        ("email,Email Address\na@example.com,b@example.com\n", "two columns for the email"),
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


def csv_of(size: int, rows: int) -> bytes:
    """A CSV of exactly ``size`` bytes: ``rows`` people, padded out by a column nobody reads."""
    header = b"email,name,notes\n"
    lines = [f"reader{i}@example.com,Reader {i},".encode() for i in range(rows)]
    room = size - len(header) - sum(len(line) + 1 for line in lines)
    assert room >= 0
    pad, extra = divmod(room, rows)
    body = b"".join(
        line + b"x" * (pad + (extra if i == rows - 1 else 0)) + b"\n"
        for i, line in enumerate(lines)
    )
    data = header + body
    assert len(data) == size
    return data


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_file_of_the_limit_goes_in_and_one_byte_more_gets_a_clear_413(app, run_jobs):
    limit = settings(app).import_max_bytes
    assert limit == 20 * 1024 * 1024  # the default the README and the page state
    client = editor_client(app)
    assert 'id="import-limit">20 MB<' in client.get("/editor/import").text

    accepted = upload(client, csv_of(limit, rows=2000))
    assert accepted.status_code == 302, accepted.text[:300]
    run_jobs()
    progress = client.get(accepted.headers["Location"] + ".json").get_json()
    assert progress["status"] == "done", progress
    assert progress["done_rows"] == progress["total_rows"] == 2000
    assert progress["added"] == 2000 and progress["error_count"] == 0
    assert count(Subscriber) == 2000

    # Just over: the request fits, the file does not. Far over: the request itself is refused.
    for size in (limit + 1, limit + 2 * 1024 * 1024):
        refused = upload(client, csv_of(size, rows=10))
        assert refused.status_code == 413
        assert refused.mimetype == "text/html"
        assert "That file is too large: the limit is 20 MB per import." in refused.text
        assert 'name="file"' in refused.text  # the form again, to choose another file
    assert count(ImportJob) == 1 and count(Subscriber) == 2000


def test_the_page_and_the_check_both_read_the_setting(app):
    override_settings(app, import_max_bytes=512 * 1024)
    client = editor_client(app)
    assert 'id="import-limit">512 KB<' in client.get("/editor/import").text
    refused = upload(client, csv_of(512 * 1024 + 1, rows=10))
    assert refused.status_code == 413 and "the limit is 512 KB per import" in refused.text
    assert upload(client, csv_of(512 * 1024, rows=10)).status_code == 302
    assert count(ImportJob) == 1


def test_only_an_editor_gets_the_import_limit(app):
    # Anybody else posting there meets the app's own limit, and no page with recent imports.
    upload(editor_client(app), CSV, name="private-list.csv")
    anonymous = app.test_client()
    big = csv_of(settings(app).max_content_length + 1024, rows=10)
    refused = anonymous.post(
        "/editor/import",
        data={"mode": "confirmed", "file": (io.BytesIO(big), "people.csv")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 413
    assert "private-list" not in refused.text and 'name="file"' not in refused.text
    assert count(ImportJob) == 1


def test_the_column_check_shows_the_mapping_the_first_rows_and_the_mails_it_will_send(
    app, run_jobs, inbox, make_subscriber
):
    make_subscriber("grace@example.com", "confirmed")
    client = editor_client(app)
    token = csrf_from(client.get("/editor/import").text)
    data = Path(__file__).parents[1] / "subscribers/exports/mailchimp_subscribed_members.csv"
    checked = client.post(
        "/editor/import",
        data={
            "csrf_token": token,
            "mode": "confirm",
            "tags": "from mailchimp",
            "file": (io.BytesIO(data.read_bytes()), "members.csv"),
        },
        content_type="multipart/form-data",
    )
    assert checked.status_code == 302 and checked.headers["Location"].endswith("/check")
    page = client.get(checked.headers["Location"]).text
    mapping = dict(re.findall(r"<tr><td>([^<]+)</td><td[^>]*>([^<]+)</td></tr>", page))
    assert mapping["Email Address"] == "email address"
    assert mapping["First Name"] == "first name" and mapping["TAGS"] == "tags"
    assert mapping["OPTIN_TIME"] == "sign-up date" and mapping["LEID"] == "not imported"
    assert "ada@example.com (Ada Lovelace)" in page and "tags group 7, vip" in page
    # Grace is on the list already: two new addresses, two mails.
    assert "This will send 2 confirmation mails" in page
    assert run_jobs() == 0 and not inbox.messages  # nothing happens before the start
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 1
    start = re.search(r'action="(/editor/import/\d+/start)"', page).group(1)
    client.post(start, data={"csrf_token": csrf_from(page)})
    run_jobs()
    assert sorted(m["To"] for m in inbox.wait_for(2)) == ["ada@example.com", "alan@example.com"]
    again = client.post(start, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 409  # started once only


def test_a_checked_import_can_be_dropped(app):
    client = editor_client(app)
    token = csrf_from(client.get("/editor/import").text)
    checked = client.post(
        "/editor/import",
        data={"csrf_token": token, "mode": "confirm", "file": (io.BytesIO(CSV.encode()), "p.csv")},
        content_type="multipart/form-data",
    )
    page = client.get(checked.headers["Location"]).text
    drop = re.search(r'action="(/editor/import/\d+/discard)"', page).group(1)
    client.post(drop, data={"csrf_token": csrf_from(page)})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportJob)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
