"""Merge fields: the reader's name in an issue's subject and body, with a fallback.

An editor writes ``Hi {{ name | default('there') }}``. Each ``{{ … }}`` is parsed once by
Jinja's sandbox and must be exactly ``name`` or ``name | default('text')``: anything else (an
attribute, a call, another variable, a ``{% … %}`` block) is refused when the issue is saved,
so no stored issue can reach a Python object. At send time each field is cut out of the text
and replaced by a placeholder that Markdown leaves alone; the mail is rendered once around the
placeholders and each copy only fills in its reader's value (escaped in the HTML part).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from newsletter.errors import Invalid

# Letters only: neither Markdown, the HTML sanitiser nor quoted-printable touch it.
PLACEHOLDER = "MERGExFIELDx{}xPLACEHOLDER"
_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_OPENERS = ("{{", "{%", "{#")
MAX_FALLBACK = 100
# The one field a reader has; their address is never offered (a forwarded mail would show it).
FIELD = "name"
HELP = "A merge field is written {{ name }} or {{ name | default('there') }}."

_SANDBOX = SandboxedEnvironment(autoescape=False)


@dataclass(frozen=True)
class MergeField:
    """One ``{{ … }}`` of an issue: the text as written, and what a reader with no name sees."""

    source: str
    fallback: str

    def value(self, name: str) -> str:
        """Return what this field shows a reader called ``name`` ("" for no name)."""
        return name or self.fallback


def _fallback(expr: nodes.Expr, source: str) -> str:
    """Return the fallback of an allowed expression; refuse anything else."""
    if isinstance(expr, nodes.Name) and expr.name == FIELD:
        return ""
    if (
        isinstance(expr, nodes.Filter)
        and expr.name == "default"
        and isinstance(expr.node, nodes.Name)
        and expr.node.name == FIELD
        and not expr.kwargs
        and expr.dyn_args is None
        and expr.dyn_kwargs is None
        and len(expr.args) in (1, 2)
        and isinstance(expr.args[0], nodes.Const)
        and isinstance(expr.args[0].value, str)
        and all(isinstance(a, nodes.Const) and isinstance(a.value, bool) for a in expr.args[1:])
    ):
        fallback = expr.args[0].value
        if len(fallback) > MAX_FALLBACK:
            raise Invalid(
                "body_md", f"A merge field's fallback is longer than {MAX_FALLBACK} characters."
            )
        return fallback
    raise Invalid("body_md", f"{source!r} is not a merge field this newsletter knows. {HELP}")


def parse_field(source: str, field: str = "body_md") -> MergeField:
    """Parse one ``{{ … }}`` through the sandbox; refuse all but the reader's name."""
    if not source.startswith("{{"):
        raise Invalid(
            field, f"{source!r}: only merge fields are allowed, no blocks or comments. {HELP}"
        )
    try:
        tree = _SANDBOX.parse(source)
    except TemplateSyntaxError as exc:
        raise Invalid(
            field, f"{source!r} is not a valid merge field ({exc.message}). {HELP}"
        ) from None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        raise Invalid(field, f"{source!r} is not a merge field this newsletter knows. {HELP}")
    try:
        return MergeField(source, _fallback(body[0].nodes[0], source))
    except Invalid as exc:
        raise Invalid(field, exc.message) from None


def find_fields(text: str, field: str = "body_md") -> list[MergeField]:
    """Return the merge fields of ``text`` in order; refuse a bad one or a lone opener."""
    found = [parse_field(m.group(0), field) for m in _SPAN.finditer(text)]
    rest = _SPAN.sub("", text)
    for opener in _OPENERS:
        if opener in rest:
            raise Invalid(field, f"A {opener} is never closed. {HELP}")
    return found


def check(subject: str, body_md: str) -> None:
    """Refuse an issue whose subject or body holds anything but known merge fields."""
    find_fields(subject, "subject")
    find_fields(body_md, "body_md")


@dataclass(frozen=True)
class Merged:
    """A subject and body with their fields replaced by placeholders, and the fields by number."""

    subject: str
    body_md: str
    fields: Sequence[MergeField]

    def placeholders(self) -> dict[str, int]:
        """Return each placeholder and the number of its field."""
        return {PLACEHOLDER.format(_word(i)): i for i in range(len(self.fields))}

    def values(self, name: str) -> list[str]:
        """Return every field's value for a reader called ``name``."""
        return [f.value(name) for f in self.fields]

    def fill(self, text: str, name: str, *, html: bool = False) -> str:
        """Replace the placeholders in rendered ``text`` with the values for ``name``."""
        for placeholder, index in self.placeholders().items():
            value = self.fields[index].value(name)
            text = text.replace(placeholder, str(escape(value)) if html else value)
        return text


def _word(index: int) -> str:
    # Digits could join a neighbouring number in Markdown's eyes; letters keep it one word.
    out = ""
    index += 1
    while index:
        index, digit = divmod(index - 1, 26)
        out = chr(ord("a") + digit) + out
    return out


def split(subject: str, body_md: str, *, strict: bool = True) -> Merged:
    """Cut the merge fields out of ``subject`` and ``body_md``, one placeholder for each.

    Not ``strict`` (an issue stored before merge fields were checked), what is no merge field
    stays as written instead of being refused.
    """
    fields: list[MergeField] = []

    def cut(text: str, field: str) -> str:
        def swap(match: re.Match[str]) -> str:
            try:
                fields.append(parse_field(match.group(0), field))
            except Invalid:
                if strict:
                    raise
                return match.group(0)
            return PLACEHOLDER.format(_word(len(fields) - 1))

        return _SPAN.sub(swap, text)

    new_subject = cut(subject, "subject")
    return Merged(new_subject, cut(body_md, "body_md"), tuple(fields))


def with_fallbacks(text: str) -> str:
    """Return ``text`` with each field shown as for a reader with no name (archive pages)."""
    return _SPAN.sub(lambda m: _safe_fallback(m.group(0)), text)


# A field with no fallback leaves a gap: "Hi {{ name }}, a tip" reads "Hi, a tip" in public.
_SPACE_BEFORE_MARK = re.compile(r"\s+([,.;:!?…)])")
_LEADING_MARKS = re.compile(r"^[\s,.;:!?…–—-]+")


def public_line(text: str) -> str:
    """Return a subject as anyone but a reader sees it: fields as their fallback, gaps closed."""
    if not any(opener in text for opener in _OPENERS):
        return text
    line = " ".join(with_fallbacks(text).split())
    line = _LEADING_MARKS.sub("", _SPACE_BEFORE_MARK.sub(r"\1", line))
    return line or text


def _safe_fallback(source: str) -> str:
    try:
        return parse_field(source).fallback
    except Invalid:
        return source  # written before merge fields existed: shown as written
