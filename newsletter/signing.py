"""The app's signing keys: SECRET_KEY and SECRET_KEY_FALLBACKS, in one documented order.

SECRET_KEY signs everything new; the fallbacks (most recent first, as Flask documents
SECRET_KEY_FALLBACKS) are old keys whose signatures are still accepted after a rotation.
Two orders are needed, and both are made here:

- ``signing_keys``: newest first, for a check that tries each key in turn;
- ``serializer_keys``: oldest first, as itsdangerous wants its ``secret_key`` list: it signs
  with the LAST key (so SECRET_KEY) and accepts a signature by any of them.
"""

from __future__ import annotations

from collections.abc import Iterable


def signing_keys(secret_key: str, fallbacks: Iterable[str] | None = None) -> list[str]:
    """Return every key a signature may be under, newest first: SECRET_KEY, then the fallbacks."""
    return [secret_key, *(fallbacks or ())]


def serializer_keys(secret_key: str, fallbacks: Iterable[str] | None = None) -> list[str]:
    """Return the keys oldest first, SECRET_KEY last: itsdangerous signs with the last one."""
    return signing_keys(secret_key, fallbacks)[::-1]
