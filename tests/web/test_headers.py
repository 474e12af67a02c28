"""Every answer carries the right security headers: one policy for editor pages, one public."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.extensions import db
from newsletter.models import ImportJob
from tests.helpers.browser import live_server, page
from tests.helpers.editors import PASSWORD, editor_client, seed_people

__all__ = ["live_server", "page"]
SHOTS = Path("/tmp/shots")

EDITOR_PAGES = [
    "/editor/",
    "/editor/login",
    "/editor/issues/new",
    "/editor/subscribers",
    "/editor/import",
    "/editor/stats",
    "/editor/tokens",
    "/editor/webhooks",
    "/editor/no-such-page",
]
PUBLIC_PAGES = ["/", "/archive", "/safe-sender", "/confirm/not-a-token", "/no-such-page"]


def test_every_editor_page_gets_the_nonce_policy_and_no_store(app):
    client = editor_client(app)
    for path in EDITOR_PAGES:
        answer = client.get(path)
        policy = answer.headers.get("Content-Security-Policy", "")
        assert re.search(r"script-src 'nonce-[\w-]+'", policy), path
        assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy, path
        assert answer.headers.get("Cache-Control") == "no-store", path
        assert "Strict-Transport-Security" not in answer.headers  # BASE_URL is http here


def test_an_editor_pages_scripts_carry_the_nonce_its_policy_allows(app):
    client = editor_client(app)
    job = ImportJob(filename="x.csv", csv_text="email\n")
    db.session.add(job)
    db.session.commit()
    for path in ("/editor/issues/new", f"/editor/import/{job.id}"):
        answer = client.get(path)
        nonce = re.search(r"'nonce-([\w-]+)'", answer.headers["Content-Security-Policy"])[1]
        scripts = re.findall(r"<script([^>]*)>", answer.get_data(as_text=True))
        assert scripts, path
        assert all(f'nonce="{nonce}"' in attrs for attrs in scripts), (path, scripts)


def test_public_pages_get_a_policy_without_scripts_and_may_be_cached(app):
    client = app.test_client()
    for path in PUBLIC_PAGES:
        answer = client.get(path)
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in policy and "script-src" not in policy, path
        assert "style-src 'unsafe-inline'" in policy and "form-action 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy, path
        assert answer.headers.get("Cache-Control") != "no-store", path


@pytest.mark.parametrize("path", ["/", "/editor/login", "/api/v1/openapi.json"])
def test_hsts_is_sent_when_base_url_is_https(make_app, path):
    answer = make_app(BASE_URL="https://news.example.org").test_client().get(path)
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.browser
def test_pages_render_and_work_under_their_policy_in_chromium(live_server, page):
    seed_people(live_server.app)
    violations: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('Content Security Policy: ' + e.violatedDirective))"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(live_server.url + "/")
        page.get_by_role("button", name="Subscribe").wait_for()
        page.screenshot(path=str(SHOTS / f"h5-front-{width}.png"), full_page=True)
    page.get_by_label("Email").fill("new.reader@example.com")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_text("inbox").first.wait_for()

    page.goto(live_server.url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Issues").wait_for()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(live_server.url + "/editor/stats")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"h5-stats-{width}.png"), full_page=True)
    # A page whose own script must run under the policy: the issue form's submit-once guard.
    page.goto(live_server.url + "/editor/issues/new")
    page.get_by_label("Subject").fill("Policy check")
    page.get_by_label("Body (Markdown)").fill("Body")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("heading", name="Policy check").wait_for()
    page.get_by_role("link", name="Preview the email").click()
    page.get_by_role("tab", name="Plain text").click()
    assert page.get_by_role("tab", name="Plain text").get_attribute("aria-selected") == "true"
    page.screenshot(path=str(SHOTS / "h5-preview-1280.png"), full_page=True)
    assert violations == []
