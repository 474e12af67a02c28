"""Markdown bodies become safe HTML and readable text; subjects become slugs."""

from __future__ import annotations

from newsletter.mail.body import render_body, slugify

BASE = "http://newsletter.test"


def test_scripts_handlers_and_javascript_links_are_removed():
    body = render_body(
        '<script>alert(1)</script><img src="x.png" onerror="alert(2)">'
        "[click](javascript:alert(3)) <a href='#' onclick='x()'>a</a>",
        BASE,
    )
    for bad in ("<script", "alert(1)", "onerror", "javascript:", "onclick"):
        assert bad not in body.html


def test_normal_formatting_links_images_code_and_tables_survive():
    body = render_body(
        "# Title\n\n**bold** _it_ [link](https://example.com) ![pic](/img/a.png)\n\n"
        "```\ncode <b>\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        BASE,
    )
    for good in (
        "<h1>",
        "<strong>bold</strong>",
        "<em>it</em>",
        '<a href="https://example.com"',
        'src="http://newsletter.test/img/a.png"',
        "<pre><code>code &lt;b&gt;",
        "<table>",
    ):
        assert good in body.html  # fmt: skip
    assert "link (https://example.com)" in body.text
    assert "code <b>" in body.text and "<strong>" not in body.text


def test_template_syntax_is_kept_as_text():
    body = render_body("{{ config }} {% for x in y %}", BASE)
    assert "{{ config }}" in body.html and "{{ config }}" in body.text


def test_slugs_are_ascii_words():
    assert slugify("Héllo, World! Tip #3") == "hello-world-tip-3"
    assert slugify("!!!") == "issue"
