"""`newsletter editors add|passwd|list|remove` manage accounts that can then log in."""

from __future__ import annotations

from newsletter.extensions import db
from newsletter.models import Editor
from tests.helpers.editors import login


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["editors", *args], input=input)


def test_add_with_password_on_stdin_creates_an_account_that_can_log_in(app, client):
    result = run(app, "add", "Boss@Example.org", "--password-stdin", input="a long enough pass\n")
    assert result.exit_code == 0, result.output
    assert "editor boss@example.org added" in result.output
    editor = db.session.query(Editor).one()
    assert editor.password_hash.startswith("$argon2id$")
    assert "a long enough pass" not in editor.password_hash
    assert login(client, "boss@example.org", "a long enough pass").status_code == 302


def test_add_asks_twice_for_the_password_without_echoing_it(app, client):
    result = run(app, "add", "ed@example.org", input="passphrase-1234\npassphrase-1234\n")
    assert result.exit_code == 0, result.output
    assert "passphrase-1234" not in result.output
    assert "Repeat the password" in result.output
    assert login(client, "ed@example.org", "passphrase-1234").status_code == 302


def test_a_mismatched_confirmation_is_asked_again(app):
    result = run(
        app,
        "add",
        "ed@example.org",
        input="passphrase-1234\nother-phrase-99\npassphrase-1234\npassphrase-1234\n",
    )
    assert result.exit_code == 0, result.output
    assert db.session.query(Editor).count() == 1


def test_a_short_password_is_refused_with_one_line(app):
    result = run(app, "add", "ed@example.org", "--password-stdin", input="short\n")
    assert result.exit_code != 0
    assert "at least 10 characters" in result.output
    assert db.session.query(Editor).count() == 0


def test_a_duplicate_account_is_refused(app):
    run(app, "add", "ed@example.org", "--password-stdin", input="a long enough pass\n")
    result = run(app, "add", "ED@example.org", "--password-stdin", input="another long one\n")
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: an editor with the address ed@example.org already exists"
    )
    assert db.session.query(Editor).count() == 1


def test_a_bad_address_is_refused(app):
    result = run(app, "add", "not-an-address", "--password-stdin", input="a long enough pass\n")
    assert result.exit_code != 0
    assert "Error:" in result.output
    assert db.session.query(Editor).count() == 0


def test_passwd_changes_the_password_list_and_remove(app, client):
    run(app, "add", "ed@example.org", "--password-stdin", input="a long enough pass\n")
    result = run(app, "passwd", "ed@example.org", "--password-stdin", input="the new passphrase\n")
    assert result.exit_code == 0, result.output
    assert login(client, "ed@example.org", "a long enough pass").status_code == 401
    assert login(client, "ed@example.org", "the new passphrase").status_code == 302
    listed = run(app, "list")
    assert listed.output.startswith("ed@example.org\tcreated ")
    assert run(app, "remove", "ed@example.org").exit_code == 0
    assert db.session.query(Editor).count() == 0
    missing = run(app, "passwd", "ed@example.org", "--password-stdin", input="whatever12345\n")
    assert missing.exit_code != 0 and "no editor with the address" in missing.output
