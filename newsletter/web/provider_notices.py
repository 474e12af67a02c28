"""Incoming: mail providers' bounce and complaint notifications, ``POST /hooks/bounces/<provider>``.

(Outgoing webhooks, the ones this service posts, are ``webhooks/`` and ``tasks/webhook_posts.py``.)

Every answer is JSON and none is a 500: a provider retries what we did not answer 2xx,
so a refusal says why (401 unauthenticated, 400 unreadable, 404 not set up, 413 too big).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from flask import Blueprint, Flask, jsonify, request

from newsletter.bounces import providers
from newsletter.bounces.intake import apply_notice
from newsletter.extensions import csrf, db, get_redis, settings

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)  # authenticated by each provider's signature or credentials, not a cookie
log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a provider's notification is a few kB, SES's with headers ~10 kB
REPLAY_TTL = 7 * 24 * 3600  # longer than any provider keeps retrying one message


def register(app: Flask) -> None:
    """Attach the provider webhooks to the app."""
    app.register_blueprint(bp)


def _refuse(status: int, message: str) -> Any:
    headers = {"WWW-Authenticate": 'Basic realm="bounces"'} if status == 401 else {}
    return jsonify({"error": {"code": status, "message": message}}), status, headers


@bp.post("/bounces/<provider>")
def bounces(provider: str) -> Any:
    """Authenticate one provider notification, take its bounces and complaints in."""
    found = settings()
    if provider not in providers.PROVIDERS or not providers.configured(provider, found):
        return _refuse(404, "no such provider webhook is set up here")
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(413, f"the body is over {MAX_BODY} bytes")
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _refuse(413, f"the body is over {MAX_BODY} bytes")
    try:
        payload = json.loads(body)
        hook = providers.read(
            provider, payload, request.headers.get("Authorization", ""), found, time.time()
        )
    except (ValueError, RecursionError, providers.Malformed) as exc:
        return _refuse(400, f"not a {provider} notification: {str(exc)[:200]}")
    except providers.Unauthenticated as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        return _refuse(401, str(exc))
    if hook.replay_key and not _first_time(hook.replay_key):
        return jsonify({"results": ["duplicate: this notification was already taken in"]})
    try:
        results = [apply_notice(db.session(), notice, settings()) for notice in hook.notices]
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _forget(hook.replay_key)  # so the provider's retry is taken in
        raise
    for line in results:
        log.info("%s webhook: %s", provider, line)
    return jsonify({"results": results or [hook.note or "nothing to take in"]})


def _first_time(key: str) -> bool:
    """Return whether this message is new, remembering it; True when Redis cannot say."""
    try:
        return bool(get_redis().set(f"hooks:seen:{key}", 1, nx=True, ex=REPLAY_TTL))
    except redis.RedisError as exc:
        # The bounce table still records each copy's bounce once: a replay then changes nothing.
        log.warning("replay check skipped, Redis unavailable: %s", exc)
        return True


def _forget(key: str) -> None:
    if not key:
        return
    try:
        get_redis().delete(f"hooks:seen:{key}")
    except redis.RedisError:
        pass  # the replay key lapses with its TTL; the bounce table dedupes meanwhile
