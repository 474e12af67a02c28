"""Images uploaded into an issue: made fit for mail, served from BASE_URL, bad files refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from newsletter.extensions import settings
from newsletter.issues import images
from newsletter.issues.actions import create_issue, send_test, update_issue
from newsletter.services import mailer
from tests.helpers import html_part
from tests.helpers.editors import editor_client, page_token


def _photo(width: int, height: int) -> bytes:
    picture = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0132] = "2026:01:02 03:04:05"  # DateTime
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def _upload(client, issue_id: int, data: bytes, filename: str = "p.jpg", alt: str = "A chart"):
    token = page_token(client, f"/editor/issues/{issue_id}")
    return client.post(
        f"/editor/issues/{issue_id}/images",
        data={"csrf_token": token, "alt": alt, "image": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def _stored(app) -> list[str]:
    folder = settings(app).instance_path / images.FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_upload_is_shrunk_stripped_served_and_reaches_the_test_mail(app, inbox):
    before = _stored(app)
    client = editor_client(app)
    issue = create_issue("Pictures", "Look:")
    answer = _upload(client, issue.id, _photo(3000, 1500))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found = answer.get_json()
    assert found["url"].startswith("http://newsletter.test/media/issue-images/")
    assert found["markdown"] == f"![A chart]({found['url']})"
    served = app.test_client().get(found["url"].removeprefix("http://newsletter.test"))
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(served.data)) as got:
        assert got.size == (1200, 600)
        assert not got.getexif() and "exif" not in got.info
    assert b"SecretCam" not in served.data
    assert len(_stored(app)) == len(before) + 1
    update_issue(issue.id, "Pictures", "Look:\n\n" + found["markdown"])
    send_test(issue.id, "me@example.net", mailer())
    (msg,) = inbox.wait_for(1)
    assert f'src="{found["url"]}"' in html_part(msg) and 'alt="A chart"' in html_part(msg)


@pytest.mark.parametrize(
    ("data", "filename", "alt", "said"),
    [
        (b"just some text, not a picture" * 10, "fake.png", "x", "not an image we can read"),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "evil.svg",
            "x",
            "SVG images are not accepted",
        ),
        (_photo(10, 10)[:200], "cut.jpg", "x", "not an image we can read"),
        (_photo(10, 10), "p.jpg", "   ", "alt text"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(app, data, filename, alt, said):
    before = _stored(app)
    client = editor_client(app)
    issue = create_issue("Pictures", "Look:")
    answer = _upload(client, issue.id, data, filename, alt)
    assert answer.status_code == 400
    assert said in answer.get_json()["error"]
    assert _stored(app) == before


def test_a_50_mb_upload_is_refused_with_a_clear_error(app):
    before = _stored(app)
    client = editor_client(app)
    issue = create_issue("Pictures", "Look:")
    answer = _upload(client, issue.id, b"\0" * (50 * 1024 * 1024))
    assert answer.status_code == 413
    assert "larger than 10 MB" in answer.get_json()["error"]
    assert _stored(app) == before


def test_only_stored_names_are_served(app):
    client = app.test_client()
    for path in ("/media/issue-images/../secret_key", "/media/issue-images/x.png"):
        assert client.get(path).status_code == 404
