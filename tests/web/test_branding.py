"""/editor/settings: the look an editor sets wins over the environment, on every page and in
every mail at once; bad input is refused with a clear error and stores nothing."""

from __future__ import annotations

import io
import time

import pytest
import sqlalchemy as sa
from PIL import Image

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Branding, Subscriber, SubscriberStatus
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.jobs import send_welcome
from tests.helpers import html_part, text_part
from tests.helpers.editors import editor_client, log_in, make_editor, page_token

LOOK = {
    "name": "Shell Notes",
    "pitch": "One shell trick every Monday",
    "blurb": "Short tips for the terminal.\n\nWritten by people who live in it.",
    "footer": "Made with care in Leipzig.",
    "postal_address": "Hauptstr. 5, 04109 Leipzig",
    "welcome_text": "Glad you're here. The first trick is on its way.",
    "accent": "#0B6E4F",
    "logo_url": "",
}


def _png(width: int = 1200, height: int = 600, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (11, 110, 79)).save(out, format=fmt)
    return out.getvalue()


def _save(client, **changes):
    data = {**LOOK, **changes, "csrf_token": page_token(client, "/editor/settings")}
    return client.post("/editor/settings", data=data, content_type="multipart/form-data")


def _stored():
    db.session.expire_all()
    row = db.session.get(Branding, 1)
    db.session.commit()
    return None if row is None else (row.name, row.pitch, row.accent, row.logo_url, row.version)


def test_anonymous_visitors_are_sent_to_the_login(app):
    answer = app.test_client().get("/editor/settings")
    assert answer.status_code == 302 and "/editor/login" in answer.headers["Location"]


def test_the_look_set_here_wins_over_the_environment_on_every_page(app):
    client = editor_client(app)
    before = app.test_client().get("/").text
    assert "Tip of the Week" in before and "1 Example Street" in before
    assert "One short, practical tip" in before
    saved = _save(client)
    assert saved.status_code == 302
    front = app.test_client().get("/").text
    assert "<h1>Shell Notes</h1>" in front
    assert "One shell trick every Monday" in front
    assert "Short tips for the terminal." in front and "Written by people who live in it." in front
    assert "One short, practical tip" not in front
    assert "Made with care in Leipzig." in front and "Hauptstr. 5, 04109 Leipzig" in front
    assert "1 Example Street" not in front and "Tip of the Week" not in front
    assert "--accent:#0b6e4f" in front
    archive = app.test_client().get("/archive").text
    assert "Shell Notes" in archive and "Hauptstr. 5" in archive
    settings_page = client.get("/editor/settings").text
    assert 'value="Shell Notes"' in settings_page and "Saved" in settings_page


def test_a_delivered_issue_and_welcome_carry_the_new_name_footer_and_address(
    app, make_subscriber, run_jobs, inbox
):
    _save(editor_client(app))
    make_subscriber("reader@example.com")
    issue = create_issue("A trick", "Use `ctrl-r`.")
    send_issue(issue.id)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    for part in (text_part(msg), html_part(msg)):
        assert "Shell Notes" in part
        assert "Made with care in Leipzig." in part
        assert "Hauptstr. 5, 04109 Leipzig" in part
        assert "1 Example Street" not in part and "Tip of the Week" not in part
    assert "color:#0b6e4f" in html_part(msg).replace(" ", "")
    inbox.clear()
    sub = Subscriber(email="new@example.com", status=SubscriberStatus.CONFIRMED)
    db.session.add(sub)
    db.session.commit()
    assert send_welcome(sub.id) == "sent"
    (welcome,) = inbox.wait_for(1)
    assert welcome["Subject"] == "Welcome to Shell Notes"
    for part in (text_part(welcome), html_part(welcome)):
        assert "Glad you're here. The first trick is on its way." in part
        assert "Hauptstr. 5, 04109 Leipzig" in part and "Made with care in Leipzig." in part


def test_another_process_sees_a_change_within_a_second(make_app, app):
    other = make_app()  # another web or worker process: its own cache, the same database
    client = editor_client(app)
    db.session.commit()  # SQLite: hold no lock the other app's requests need
    with other.app_context():
        assert "Tip of the Week" in other.test_client().get("/").text
        db.session.remove()
    _save(client)
    db.session.commit()
    deadline = time.monotonic() + 5
    with other.app_context():
        while "Shell Notes" not in other.test_client().get("/").text:
            assert time.monotonic() < deadline, "the other process never saw the new look"
            db.session.remove()
            time.sleep(0.1)  # the other process's cache lapses by itself: nothing to await


def test_an_uploaded_logo_is_checked_resized_served_and_the_favicon(
    app, make_subscriber, run_jobs, inbox
):
    client = editor_client(app)
    default_icon = app.test_client().get("/favicon.ico")
    assert default_icon.status_code == 200
    assert default_icon.mimetype == "image/vnd.microsoft.icon"
    assert Image.open(io.BytesIO(default_icon.data)).format == "ICO"
    saved = _save(client, logo=(io.BytesIO(_png(2400, 800)), "logo.png"))
    assert saved.status_code == 302
    front = app.test_client().get("/").text
    version = _stored()[4]
    src = f"/branding/logo-{version}.png"
    assert f'src="{src}"' in front and f'href="/favicon.ico?v={version}"' in front
    logo = app.test_client().get(src)
    assert logo.status_code == 200 and logo.mimetype == "image/png"
    image = Image.open(io.BytesIO(logo.data))
    assert image.size == (600, 200)
    icon = app.test_client().get("/favicon.ico")
    assert icon.data != default_icon.data
    assert app.test_client().get("/branding/logo-999.png").status_code == 404
    make_subscriber("reader@example.com")
    send_issue(create_issue("Logo", "Body").id)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    assert f'src="http://newsletter.test{src}"' in html_part(msg)
    # Saving again without a file keeps the logo; ticking "remove" drops it.
    _save(client)
    assert 'id="site-logo"' in app.test_client().get("/").text
    _save(client, remove_logo="1")
    assert 'id="site-logo"' not in app.test_client().get("/").text


def test_a_logo_url_must_be_https(app):
    client = editor_client(app)
    assert _save(client, logo_url="https://cdn.example.org/logo.png").status_code == 302
    assert 'src="https://cdn.example.org/logo.png"' in app.test_client().get("/").text


JAVASCRIPT = "javascript:alert(document.cookie)"
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
)


@pytest.mark.parametrize(
    ("changes", "status", "said", "field"),
    [
        ({"pitch": "x" * 301}, 400, "The pitch is longer than 300 characters.", "pitch"),
        ({"name": "A\nB"}, 400, "holds a line break", "name"),
        ({"accent": "blue-ish"}, 400, "must be a hex colour such as #2454d6", "accent"),
        ({"accent": "#ffff00"}, 400, "is too light", "accent"),
        ({"logo_url": JAVASCRIPT}, 400, "must be a full https:// address", "logo_url"),
        ({"logo_url": "http://example.org/logo.png"}, 400, "https://", "logo_url"),
        ({"logo": (io.BytesIO(SVG), "logo.svg")}, 400, "SVG logos are not taken", "logo"),
        ({"logo": (io.BytesIO(b"%PDF-1.4 not an image"), "logo.png")}, 400, "not an image", "logo"),
        ({"logo": (io.BytesIO(_png()[:200]), "cut.png")}, 400, "not an image", "logo"),
    ],
)
def test_bad_input_is_refused_clearly_and_stores_nothing(app, changes, status, said, field):
    client = editor_client(app)
    _save(client, name="Before")
    before = _stored()
    answer = _save(client, **{**changes})
    assert answer.status_code == status
    assert said in answer.text
    assert f'id="{field}"' in answer.text and 'aria-invalid="true"' in answer.text
    assert _stored() == before
    assert "Before" in app.test_client().get("/").text


def test_a_mid_contrast_colour_is_taken_with_a_warning(app):
    client = editor_client(app)
    saved = _save(client, accent="#e0541c")
    assert saved.status_code == 302
    page = client.get("/editor/settings").text
    assert "contrast of" in page and "easier to read at 4.5:1" in page
    assert _stored()[2] == "#e0541c"


def test_a_megabyte_pitch_and_a_50_mb_upload_get_the_page_back_with_a_clear_error(app):
    client = editor_client(app)
    _save(client, name="Before")
    before = _stored()
    huge = _save(client, pitch="x" * 1024 * 1024)
    assert huge.status_code == 413
    assert (
        "A text is far longer than this page takes" in huge.text
        and "Nothing was changed" in huge.text
    )
    big = _save(client, logo=(io.BytesIO(b"\0" * 50 * 1024 * 1024), "huge.png"))
    assert big.status_code == 413
    assert "The logo is larger than 2 MB" in big.text
    just_over = _save(client, logo=(io.BytesIO(b"\0" * (2 * 1024 * 1024 + 1)), "big.png"))
    assert just_over.status_code == 400 and "larger than 2 MB" in just_over.text
    assert _stored() == before


def test_pages_still_answer_when_nothing_was_ever_set(app):
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Branding)) == 0
    front = app.test_client().get("/").text
    assert "--accent:#2454d6" in front and "Tip of the Week" in front
    client = app.test_client()
    log_in(client, make_editor("second@example.org"))
    assert client.get("/editor/settings").status_code == 200


def test_the_feed_and_the_doctor_read_the_name_and_address_set_here(app):
    """The feed's title is the name set here; the doctor finds the postal address set here."""
    from tests.helpers import override_settings

    override_settings(app, postal_address="")
    client = editor_client(app)
    runner = app.test_cli_runner()
    before = runner.invoke(args=["doctor", "--json"])
    assert "no postal address" in before.output
    assert _save(client).status_code == 302
    feed = app.test_client().get("/feed.xml").text
    assert "<title>Shell Notes</title>" in feed
    after = runner.invoke(args=["doctor", "--json"])
    assert "no postal address" not in after.output
