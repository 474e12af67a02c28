"""In headless Chromium: find a subscriber, import a CSV with bad rows, see charts, use tokens."""

from __future__ import annotations

import base64

import pytest

from tests.helpers.editors import PASSWORD, seed_people

pytestmark = pytest.mark.browser

CSV = "email,name\nzoe@example.com,Zoe\nbroken-address,Nope\nyan@example.com,Yan\n"


def test_an_editor_finds_imports_reads_stats_and_manages_tokens(live_server, page, tmp_path):
    seed_people(live_server.app)
    page.goto(live_server.url + "/editor/subscribers")
    assert "/editor/login" in page.url
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Subscribers").wait_for()

    # Find someone by name, open their page.
    page.get_by_label("Search address or name").fill("lovelace")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#subscribers tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    page.get_by_role("link", name="ada@example.com").click()
    page.get_by_role("heading", name="ada@example.com").wait_for()
    assert page.locator("#status").inner_text() == "confirmed"

    # Import a CSV with a bad row; the progress page turns into the report by itself.
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(CSV)
    page.goto(live_server.url + "/editor/import")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_label("already opted in elsewhere").check()
    page.get_by_role("button", name="Check the columns").click()
    page.locator("#mapping").wait_for()
    page.get_by_role("button", name="Import", exact=True).click()
    page.locator("#bad-rows").wait_for(timeout=20_000)
    assert page.locator("#bad-rows tbody tr").count() == 1
    assert page.locator("#bad-rows tbody td").first.inner_text() == "3"
    assert "2 added" in page.locator("#summary").inner_text()
    assert page.locator(".progress > div").evaluate("el => el.style.width") == "100%"

    # Stats: the charts are drawn, with visible bars and a line.
    page.goto(live_server.url + "/editor/stats")
    chart = page.locator("#weekly svg")
    chart.wait_for()
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    bars = page.locator("#weekly svg rect.bar")
    sizes = bars.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert sum(1 for h in sizes if h > 2) >= 6
    assert page.locator("#rate svg polyline.line").count() == 1
    png = base64.b64encode(chart.screenshot()).decode()
    # Decode the screenshot in the page itself and count pixels that are colour, not paper/grey.
    colored = page.evaluate(
        """async (data) => {
            const img = new Image();
            img.src = "data:image/png;base64," + data;
            await img.decode();
            const c = document.createElement("canvas");
            c.width = img.width; c.height = img.height;
            const ctx = c.getContext("2d");
            ctx.drawImage(img, 0, 0);
            const px = ctx.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < px.length; i += 4) {
                const hi = Math.max(px[i], px[i + 1], px[i + 2]);
                const lo = Math.min(px[i], px[i + 1], px[i + 2]);
                if (hi - lo > 60) n++;
            }
            return n;
        }""",
        png,
    )
    assert colored > 500, colored

    # Tokens: create one, use it, revoke it.
    page.goto(live_server.url + "/editor/tokens")
    page.get_by_label("Name (what it is for)").fill("browser test")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-value").inner_text()
    api = page.request.get(
        live_server.url + "/api/v1/subscribers", headers={"Authorization": f"Bearer {secret}"}
    )
    assert api.status == 200 and len(api.json()["data"]) == 4
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("Token revoked").wait_for()
    again = page.request.get(
        live_server.url + "/api/v1/subscribers", headers={"Authorization": f"Bearer {secret}"}
    )
    assert again.status == 401
    assert live_server.errors == []
