"""The sending domain's SPF, DKIM and DMARC for preflight: the doctor's checks, run in a job.

A dozen DNS lookups take seconds when a server is slow, so no page makes them: the first page
that wants the verdict queues this job and shows "checking"; the result waits in Redis for
RESULTS_TTL, shared by every web process, for every issue page and send in that time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from newsletter.config import Settings
from newsletter.doctor import Check, DnsUnavailable, Lookup, Status
from newsletter.doctor.dkim import check_dkim
from newsletter.doctor.dmarc import check_dmarc
from newsletter.doctor.spf import check_spf
from newsletter.extensions import get_redis, settings
from newsletter.tasks.queues import DEFAULT_QUEUE, enqueue, job, name_job

KEY = "newsletter:preflight:mail-setup"
RESULTS_TTL = 600  # records change rarely; a fix shows within ten minutes
DNS_TIMEOUT = 3.0
CHECKS: tuple[Callable[[Settings, Lookup], Check], ...] = (check_spf, check_dkim, check_dmarc)


def mail_setup_checks(found: Settings, lookup: Lookup) -> dict[str, Any]:
    """Run SPF, DKIM and DMARC; say ``unavailable`` (with why) when no DNS can be asked."""
    if lookup.unavailable:
        return {"state": "unavailable", "why": lookup.unavailable, "checks": []}
    checks = []
    for check in CHECKS:
        try:
            checks.append(check(found, lookup).as_dict())
        except DnsUnavailable as exc:
            name = check.__name__.removeprefix("check_")
            checks.append(Check(name, Status.WARN, f"not checked: {exc}").as_dict())
    return {"state": "done", "checks": checks}


@job(queue=DEFAULT_QUEUE, timeout=120, unique=True, name=lambda: "mail-setup")
def check_mail_setup() -> str:
    """Look the sending domain's records up and keep the verdict for preflight."""
    found = settings()
    result = mail_setup_checks(found, Lookup.for_config(found, timeout=DNS_TIMEOUT))
    get_redis().set(KEY, json.dumps(result), ex=RESULTS_TTL)
    bad = [c["name"] for c in result["checks"] if c["status"] != Status.OK]
    return f"mail setup: {result['state']}, to look at: {', '.join(bad) or 'nothing'}"


def mail_setup() -> dict[str, Any]:
    """Return the verdict if there is one; queue the check if nobody has yet.

    ``state`` is ``done`` (with ``checks``: the doctor's, as dicts), ``checking``,
    ``unavailable`` (no DNS to ask, with ``why``) or ``unknown`` (Redis down).
    """
    try:
        client = get_redis()
        found = client.get(KEY)
        if found:
            result: dict[str, Any] = json.loads(found)
            return result
        if client.set(KEY, json.dumps({"state": "checking", "checks": []}), nx=True, ex=120):
            enqueue(check_mail_setup, job_id=name_job(check_mail_setup))
    except redis.RedisError:
        return {"state": "unknown", "checks": []}
    return {"state": "checking", "checks": []}
