"""`newsletter subscribers import|export|list|remove` as the spec describes them."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import EventKind, Subscriber, SubscriberEvent, SubscriberStatus
from tests.helpers.readers import subscribe, subscriber


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["subscribers", *args])


def test_import_adds_good_rows_reports_bad_ones_by_line_and_is_harmless_twice(
    app, tmp_path, run_jobs, inbox
):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name\nann@example.com,Ann\nnot an address,Bad\nBob@Example.com,Bob\n"
        'c@example.com,"Cy\nLine"\n',
        encoding="utf-8",
    )
    result = _run(app, "import", str(path))
    assert result.exit_code == 0, result.output
    assert "line 3:" in result.stderr
    assert "line 5:" in result.stderr  # the name with a line break, on the line it starts
    assert "2 added" in result.stdout
    assert subscriber("bob@example.com").status is SubscriberStatus.PENDING
    assert run_jobs() == 2  # each new person gets a confirmation mail
    assert sorted(m["To"] for m in inbox.wait_for(2)) == ["ann@example.com", "bob@example.com"]
    again = _run(app, "import", str(path))
    assert again.exit_code == 0 and "0 added" in again.stdout
    assert run_jobs() == 0


def test_import_confirmed_sends_no_mail(app, tmp_path, run_jobs):
    path = tmp_path / "optin.csv"
    path.write_text("Email,Name\nann@example.com,Ann\n", encoding="utf-8")
    result = _run(app, "import", "--confirmed", str(path))
    assert result.exit_code == 0, result.output
    assert subscriber("ann@example.com").status is SubscriberStatus.CONFIRMED
    assert run_jobs() == 0


def test_import_of_an_unusable_file_fails_with_one_line(app, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"email,name\n\x00\x01,x\n")  # binary, not text
    result = _run(app, "import", str(path))
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    path.write_text("address,name\nann@example.com,Ann\n", encoding="utf-8")
    result = _run(app, "import", str(path))
    assert result.exit_code != 0 and "email" in result.stderr
    assert "Traceback" not in result.output


def test_export_writes_csv_with_the_spec_columns(app, make_subscriber):
    make_subscriber("ann@example.com", status="confirmed", name="Ann")
    make_subscriber("bob@example.com", status="unsubscribed", name="=HYPERLINK()")
    result = _run(app, "export")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {"email", "name", "status", "created_at"} <= set(rows[0])
    assert [(r["email"], r["status"]) for r in rows] == [
        ("ann@example.com", "confirmed"),
        ("bob@example.com", "unsubscribed"),
    ]
    assert rows[1]["name"] == "'=HYPERLINK()"  # no formula runs in a spreadsheet
    assert rows[0]["created_at"]
    only = _run(app, "export", "--status", "confirmed")
    assert "bob@example.com" not in only.stdout


def test_list_and_remove(app, make_subscriber):
    make_subscriber("ann@example.com", status="pending", name="Ann")
    listed = _run(app, "list")
    assert listed.exit_code == 0
    assert "ann@example.com\tpending\tAnn" in listed.stdout
    removed = _run(app, "remove", "Ann@Example.com")
    assert removed.exit_code == 0
    assert subscriber("ann@example.com") is None
    missing = _run(app, "remove", "ann@example.com")
    assert missing.exit_code != 0
    assert missing.stderr.strip().splitlines() == [
        "Error: no subscriber with the address ann@example.com"
    ]


def test_import_reserves_each_confirmation_as_a_sign_up_does(
    app, client, tmp_path, run_jobs, inbox
):
    # The command line goes through the same import as the browser: the confirmation it
    # queues counts against the address's cooldown, so signing up again at once, or importing
    # the same file again, sends no second mail.
    path = tmp_path / "people.csv"
    path.write_text("email,name\nann@example.com,Ann\n", encoding="utf-8")
    result = _run(app, "import", str(path))
    assert result.exit_code == 0, result.output
    assert "1 confirmation mail queued" in result.stdout
    assert run_jobs() == 1
    assert [m["To"] for m in inbox.wait_for(1)] == ["ann@example.com"]
    events = db.session.scalars(
        sa.select(SubscriberEvent.kind)
        .join(Subscriber)
        .where(Subscriber.email == "ann@example.com")
    ).all()
    assert EventKind.CONFIRMATION_SENT in events

    assert subscribe(client, "ann@example.com").status_code == 200
    assert _run(app, "import", str(path)).exit_code == 0
    run_jobs()
    assert len(inbox.messages) == 1
