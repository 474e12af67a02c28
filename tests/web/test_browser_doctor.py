"""In headless Chromium: an editor opens Sending health and reads each check, phone or desk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import parse_nameserver
from tests.doctor.dns_server import DnsServer
from tests.doctor.world import private_pem, publish_everything
from tests.helpers import override_settings
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser


@pytest.fixture
def dns_server():
    server = DnsServer()
    yield server
    server.stop()


def test_an_editor_reads_sending_health_on_a_desk_and_a_phone(
    live_server, page, dns_server, tmp_path
):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    publish_everything(dns_server.zone, key)
    dns_server.zone.records.pop(("_dmarc.example.com", "TXT"))  # one check that fails
    override_settings(
        live_server.app,
        dns_nameserver=parse_nameserver(dns_server.address),
        mail_from="Example Tips <tips@example.com>",
        dkim_domain="example.com",
        dkim_selector="tips",
        dkim_private_key=private_pem(key),
    )
    with live_server.app.app_context():
        add_editor("ed@example.org")
    shots = Path(os.environ.get("DOCTOR_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/editor/")
    health = page.locator("#sending-health")
    assert health.inner_text() == (
        "Sending health: not checked in the last few minutes; open it to run the checks"
    )
    health.get_by_role("link", name="Sending health").click()
    page.wait_for_url("**/editor/doctor")

    assert page.get_by_role("heading", name="Sending health").is_visible()
    assert page.locator("#health-summary strong").inner_text() == (
        "1 failed (dmarc), 1 to look at (settings)"
    )
    rows = {row.get_attribute("data-check"): row for row in page.locator("ul.checks > li").all()}
    assert list(rows) == ["settings", "smtp", "spf", "dkim", "dmarc", "bounces", "images"]
    assert rows["dmarc"].locator(".badge").inner_text().lower() == "fail"
    assert rows["dmarc"].locator(".summary").inner_text() == (
        "no DMARC record at _dmarc.example.com: Gmail and Yahoo require one from bulk senders"
    )
    assert rows["dkim"].locator(".summary").inner_text() == (
        "d=example.com s=tips: the published rsa key (2048 bits) matches DKIM_PRIVATE_KEY"
    )
    assert rows["spf"].locator(".badge").inner_text().lower() == "ok"
    assert "nothing was sent" in rows["smtp"].locator(".summary").inner_text()
    page.screenshot(path=str(shots / "doctor-1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # On a phone the badge sits above its check and the text takes the card's whole width.
    badge, name = rows["dmarc"].locator(".badge").bounding_box(), rows["dmarc"].locator(".name")
    assert abs(badge["x"] - name.bounding_box()["x"]) < 2
    assert badge["y"] < name.bounding_box()["y"]
    page.screenshot(path=str(shots / "doctor-390.png"), full_page=True)

    page.get_by_role("button", name="Check again").click()
    page.wait_for_url("**/editor/doctor")
    assert "checked just now" in page.locator("#health-summary").inner_text()
    page.goto(live_server.url + "/editor/")
    assert health.inner_text() == (
        "Sending health: 1 failed (dmarc), 1 to look at (settings) · checked just now"
    )
    page.screenshot(path=str(shots / "doctor-dashboard-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(shots / "doctor-dashboard-1280.png"), full_page=True)
    assert live_server.errors == []
