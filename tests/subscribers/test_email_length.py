"""One address length limit: the columns, the checks and the form fields all say 254."""

from __future__ import annotations

import pytest

from newsletter.api.openapi import EMAIL
from newsletter.errors import Invalid
from newsletter.models import MAX_EMAIL_LENGTH, Bounce, Editor, Subscriber
from newsletter.subscribers.validate import normalize_email


def test_the_limit_is_rfc_5321s_and_every_address_column_holds_it():
    assert MAX_EMAIL_LENGTH == 254
    for column in (
        Subscriber.email,
        Subscriber.new_email,
        Subscriber.old_email,
        Editor.email,
        Bounce.undone_by,
    ):
        assert column.type.length == MAX_EMAIL_LENGTH
    assert EMAIL["maxLength"] == MAX_EMAIL_LENGTH


def test_an_address_at_the_limit_passes_and_one_past_it_is_refused():
    # 64 characters before the @ and labels of at most 63 after it, as RFC 5321 allows.
    head = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "."
    longest = head + "d" * (MAX_EMAIL_LENGTH - len(head) - 4) + ".org"
    assert len(longest) == MAX_EMAIL_LENGTH
    assert normalize_email(longest) == longest
    with pytest.raises(Invalid):
        normalize_email("a" + longest)


def test_the_sign_up_form_field_stops_at_the_limit(client):
    assert f'maxlength="{MAX_EMAIL_LENGTH}"' in client.get("/").get_data(as_text=True)
