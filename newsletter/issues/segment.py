"""An issue's segment: the tags whose confirmed readers it goes to (none: every confirmed reader).

Every send request (the CLI, the editor's send, schedule and weekly-slot forms, the API) says
its audience; ``choose_segment`` stores it on the issue before the send is planned, so the
snapshot, a scheduled start, the weekly slot, the archive and the stats all read the same
rows. The audience rule itself is ``delivery.audience``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.audience import count_audience
from newsletter.errors import Conflict, NotFound
from newsletter.models import ISSUE_UNSENT, Issue, IssueTag, Tag
from newsletter.subscribers.tags import find_tags, parse_tags


def segment_of(session: Session, issue_id: int) -> list[str]:
    """Return the names of the tags an issue goes (or went) to; empty: every confirmed reader."""
    return list(
        session.scalars(
            sa.select(Tag.name)
            .join(IssueTag, IssueTag.tag_id == Tag.id)
            .where(IssueTag.issue_id == issue_id)
            .order_by(Tag.key)
        )
    )


def segments_of(session: Session, issue_ids: Sequence[int]) -> dict[int, list[str]]:
    """Return the segment of each issue, in one query (for lists of issues)."""
    found: dict[int, list[str]] = {i: [] for i in issue_ids}
    if not found:
        return found
    rows = session.execute(
        sa.select(IssueTag.issue_id, Tag.name)
        .join(Tag, Tag.id == IssueTag.tag_id)
        .where(IssueTag.issue_id.in_(list(found)))
        .order_by(Tag.key)
    )
    for issue_id, name in rows:
        found[issue_id].append(name)
    return found


def audience_of(session: Session, names: Sequence[str]) -> int:
    """Return how many readers a send to these tags (none: everyone) would go to now."""
    tags = find_tags(session, parse_tags(list(names))) if names else []
    return count_audience(session, [t.id for t in tags])


def choose_segment(session: Session, issue_id: int, names: Sequence[str]) -> list[str]:
    """Store the segment an unsent issue goes to; return the tag names as stored.

    Refused, with nothing stored, for an unknown tag (NotFound) and for a segment with nobody
    confirmed in it (Conflict). An issue already queued keeps the segment it went to; the
    send action then says what it is doing. The caller commits.
    """
    issue = (
        session.get(Issue, issue_id, with_for_update=True) if isinstance(issue_id, int) else None
    )
    if issue is None:
        raise NotFound(f"No issue with id {issue_id}.")
    if issue.status not in ISSUE_UNSENT:
        return segment_of(session, issue_id)
    tags = find_tags(session, parse_tags(list(names))) if names else []
    if tags and not count_audience(session, [t.id for t in tags]):
        listed = ", ".join(t.name for t in tags)
        raise Conflict(
            f"Nobody confirmed carries the tag{'' if len(tags) == 1 else 's'} {listed}; "
            "nothing was queued."
        )
    session.execute(sa.delete(IssueTag).where(IssueTag.issue_id == issue_id))
    if tags:
        session.execute(sa.insert(IssueTag), [{"issue_id": issue_id, "tag_id": t.id} for t in tags])
    return [t.name for t in tags]
