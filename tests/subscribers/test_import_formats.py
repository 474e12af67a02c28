"""Lists brought from other tools, as their exports come: real files in each tool's format
(tests/subscribers/exports/), read by `newsletter subscribers import` without any editing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import SubscriberStatus
from tests.helpers.readers import subscriber

EXPORTS = Path(__file__).parent / "exports"
S = SubscriberStatus


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["subscribers", *args])


def _import(app, name: str, *args: str):
    result = _run(app, "import", str(EXPORTS / name), *args)
    assert result.exit_code == 0, result.output
    return result


def _tags(email: str) -> list[str]:
    rows = db.session.execute(
        sa.text(
            "SELECT t.name FROM tag t JOIN subscriber_tag st ON st.tag_id = t.id "
            "JOIN subscriber s ON s.id = st.subscriber_id WHERE s.email = :e ORDER BY t.key"
        ),
        {"e": email},
    )
    names = [r[0] for r in rows]
    db.session.commit()
    return names


def test_mailchimp_subscribed_unsubscribed_and_cleaned_files(app, run_jobs):
    done = _import(
        app, "mailchimp_subscribed_members.csv", "--confirmed", "--tag", "from mailchimp"
    )
    assert "3 added" in done.stdout and "0 skipped" in done.stdout
    ada = subscriber("ada@example.com")
    assert ada.status is S.CONFIRMED and ada.name == "Ada Lovelace"
    assert ada.created_at == datetime(2019, 3, 4, 9, 12, 45, tzinfo=UTC)  # the original sign-up
    assert _tags("ada@example.com") == ["from mailchimp", "group 7", "vip"]
    assert subscriber("alan@example.com").name == "Alan"

    left = _import(app, "mailchimp_unsubscribed_members.csv", "--confirmed")
    assert "2 kept out as the file says" in left.stdout
    assert subscriber("left@example.com").status is S.UNSUBSCRIBED
    # Alan was confirmed by the first file; this one says he left since: he is out.
    assert subscriber("alan@example.com").status is S.UNSUBSCRIBED
    _import(app, "mailchimp_cleaned_members.csv", "--confirmed")
    assert subscriber("gone@example.com").status is S.BOUNCED
    # A later import, even with --confirmed, brings nobody back.
    _import(app, "mailchimp_subscribed_members.csv", "--confirmed")
    assert subscriber("alan@example.com").status is S.UNSUBSCRIBED
    assert run_jobs() == 0  # nobody was mailed


def test_substack_export(app, run_jobs, inbox):
    done = _import(app, "substack_subscribers.csv")
    assert "3 added" in done.stdout and "1 kept out" in done.stdout
    assert subscriber("nomail@example.com").status is S.UNSUBSCRIBED
    assert subscriber("reader1@example.com").created_at == datetime(
        2022, 4, 1, 10, 11, 12, tzinfo=UTC
    )
    assert run_jobs() == 2  # a confirmation for each who still gets mail there
    assert sorted(m["To"] for m in inbox.wait_for(2)) == [
        "paid@example.com",
        "reader1@example.com",
    ]


def test_buttondown_export(app, run_jobs):
    done = _import(app, "buttondown_subscribers.csv", "--confirmed")
    assert "4 added" in done.stdout, done.output
    assert subscriber("bd1@example.com").status is S.CONFIRMED
    assert _tags("bd1@example.com") == ["group 9", "vip"]
    assert subscriber("bd2@example.com").status is S.UNSUBSCRIBED
    assert subscriber("bd3@example.com").status is S.BOUNCED
    # Never activated there: not confirmed here by --confirmed either.
    assert subscriber("bd4@example.com").status is S.PENDING
    assert run_jobs() == 0


def test_listmonk_export(app):
    done = _import(app, "listmonk_subscribers.csv", "--confirmed")
    assert "2 added" in done.stdout
    lia = subscriber("lm1@example.com")
    assert lia.status is S.CONFIRMED and lia.name == "Lia Monk"
    assert lia.created_at == datetime(2022, 8, 8, 8, 8, 8, 123456, tzinfo=UTC)
    blocked = subscriber("lm2@example.com")
    assert blocked.status is S.UNSUBSCRIBED


@pytest.mark.parametrize("name", ["excel_semicolon_latin1.csv", "excel_semicolon_bom.csv"])
def test_a_spreadsheets_semicolons_bom_latin1_and_windows_line_ends(app, name):
    done = _import(app, name, "--confirmed")
    assert "2 added" in done.stdout and "0 skipped" in done.stdout
    assert subscriber("mueller@example.com").name == "Jürgen Müller"
    assert subscriber("zoe@example.com").name == "Zoë"
    assert _tags("mueller@example.com") == ["gruppe 7"]


def test_own_export_goes_back_in_with_statuses_tags_and_formula_cells(
    app, make_subscriber, tmp_path
):
    runner = app.test_cli_runner()
    runner.invoke(args=["subscribers", "add", "a@example.com", "--confirmed", "x", "--tag", "g7"])
    runner.invoke(args=["subscribers", "add", "b@example.com", "--name", "=HYPERLINK(1)"])
    make_subscriber("c@example.com", "unsubscribed")
    out = _run(app, "export").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["tags"] for r in rows] == ["g7", "", ""]
    assert rows[1]["name"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    # Into a fresh list: the same people, statuses kept, the formula guard taken off again.
    db.session.execute(sa.text("DELETE FROM subscriber"))
    db.session.commit()
    path = tmp_path / "own.csv"
    path.write_text(out, encoding="utf-8")
    done = _run(app, "import", str(path), "--confirmed")
    assert done.exit_code == 0 and "3 added" in done.stdout, done.output
    assert subscriber("b@example.com").name == "=HYPERLINK(1)"
    assert subscriber("c@example.com").status is S.UNSUBSCRIBED
    assert _tags("a@example.com") == ["g7"]


def test_bad_rows_and_bad_files_are_reported_and_nothing_is_half_done(app, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "email,name,tags\n"
        "ok@example.com,Ok,\n"
        f"big@example.com,{'x' * 200_000},\n"
        "html@example.com,H,<b>x</b>\n"
        f'many@example.com,M,"{",".join(f"t{i}" for i in range(10_000))}"\n'
        "status@example.com,S,\n"
        "ok2@example.com,Ok2,fine\n",
        encoding="utf-8",
    )
    done = _run(app, "import", str(path), "--confirmed")
    assert done.exit_code == 0, done.output
    assert "line 3: A field is" in done.stderr
    assert "line 4:" in done.stderr and "no HTML" in done.stderr
    assert "line 5:" in done.stderr and "at most 100" in done.stderr
    assert "3 added" in done.stdout and "3 skipped" in done.stdout
    for email in ("big@example.com", "html@example.com", "many@example.com"):
        assert subscriber(email) is None
    assert db.session.scalar(sa.text("SELECT count(*) FROM tag")) == 1  # "fine" only

    path.write_text("email,Email Address\na@example.com,b@example.com\n", encoding="utf-8")
    twice = _run(app, "import", str(path))
    assert twice.exit_code == 1 and "two columns for the email" in twice.stderr
    path.write_text("email\nx@example.com\n", encoding="utf-8")
    bad_tag = _run(app, "import", str(path), "--tag", "a,b")
    assert bad_tag.exit_code == 1 and "comma" in bad_tag.stderr
    assert subscriber("x@example.com") is None
    path.write_text("email,status\ny@example.com,frozen\n", encoding="utf-8")
    unknown = _run(app, "import", str(path), "--confirmed")
    assert "Unknown status 'frozen'" in unknown.stderr and subscriber("y@example.com") is None
