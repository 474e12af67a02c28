"""Refused input from imports and passwords belongs to the one error hierarchy (errors.py)."""

from __future__ import annotations

import pytest

from newsletter.auth.passwords import PasswordTooShort, hash_password
from newsletter.errors import Invalid
from newsletter.subscribers.imports import ImportFormatError, count_rows


def test_an_unusable_csv_is_invalid_input_in_the_file_field() -> None:
    with pytest.raises(Invalid) as info:
        count_rows("name,phone\nAda,1\n")
    assert isinstance(info.value, ImportFormatError)
    assert info.value.field == "file" and info.value.status == 422
    assert info.value.message == str(info.value)
    assert info.value.message.startswith("The header row has no email column")


def test_a_short_password_is_invalid_input_in_the_password_field() -> None:
    with pytest.raises(Invalid) as info:
        hash_password("short")
    assert isinstance(info.value, PasswordTooShort)
    assert info.value.field == "password"
    assert info.value.message == str(info.value) == "The password needs at least 10 characters."
