"""The editor chooses the sequence's tips and their order; the tick and "Tip N of M" follow."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.delivery import evergreen
from newsletter.delivery.sequence_choice import SequenceTip
from newsletter.extensions import db
from newsletter.models import IssueStatus
from newsletter.tasks.evergreen import evergreen_tick
from tests.delivery.test_evergreen_tick import _in_sequence, _tip, tip_rows
from tests.helpers.editors import editor_client, page_token


def _post(client, **data):
    token = page_token(client, "/editor/sequence")
    return client.post("/editor/sequence", data={"csrf_token": token, **data})


def test_the_editor_reorders_and_leaves_out_and_the_sequence_follows(
    fault_app, add_reader, run_jobs, sink
):
    tips = [_tip(n) for n in (1, 2, 3, 4)]
    ids = [t.id for t in tips]
    client = editor_client(fault_app)
    page = client.get("/editor/sequence").get_data(as_text=True)
    assert [r[1] for r in tip_rows(page)] == ["Old tip 1", "Old tip 2", "Old tip 3", "Old tip 4"]
    # Tip 4 first, tip 2 left out, tip 1 one place down.
    assert _post(client, issue_id=ids[3], action="move", to="1").status_code == 302
    assert _post(client, issue_id=ids[1], action="exclude").status_code == 302
    answer = _post(client, issue_id=ids[0], action="down")
    assert answer.status_code == 302
    page = client.get("/editor/sequence").get_data(as_text=True)
    assert "is now at place 3" in page
    rows = tip_rows(page)
    assert [(r[1], r[3]) for r in rows] == [
        ("Old tip 4", "Tip 1 of 3"),
        ("Old tip 2", "left out"),
        ("Old tip 1", "Tip 2 of 3"),
        ("Old tip 3", "Tip 3 of 3"),
    ]
    assert evergreen.sequence(db.session()) == [ids[3], ids[0], ids[2]]
    assert evergreen.tip_number(db.session(), ids[1]) is None
    # A tip archived after the choice joins at the end.
    fifth = _tip(5).id
    assert evergreen.sequence(db.session()) == [ids[3], ids[0], ids[2], fifth]
    # A reader in the sequence gets them in that order, "Tip 1 of 4" first.
    _in_sequence("seq@example.com", add_reader)
    evergreen_tick()
    run_jobs()
    (first,) = sink.accepted
    assert b"Old tip 4" in first.raw and b"Tip 1 of 4" in first.raw
    # Putting tip 2 back and resetting: every tip, oldest first.
    assert _post(client, issue_id=ids[1], action="include").status_code == 302
    assert evergreen.tip_number(db.session(), ids[1]) == (2, 5)
    assert _post(client, action="reset").status_code == 302
    assert evergreen.sequence(db.session()) == [*ids, fifth]
    db.session.rollback()


def test_bad_input_is_refused_and_changes_nothing(fault_app):
    tips = [_tip(n) for n in (1, 2, 3)]
    draft = _tip(9, IssueStatus.DRAFT)
    client = editor_client(fault_app)
    assert _post(client, issue_id=tips[2].id, action="move", to="1").status_code == 302
    before = db.session.execute(sa.select(SequenceTip.issue_id, SequenceTip.position)).all()
    db.session.rollback()
    cases = [
        (
            {"issue_id": str(tips[0].id), "action": "move", "to": "abc"},
            "Enter a place from 1 to 3.",
        ),
        ({"issue_id": str(tips[0].id), "action": "move", "to": "0"}, "Enter a place from 1 to 3."),
        ({"issue_id": str(tips[0].id), "action": "move", "to": "9" * 40}, "from 1 to 3"),
        ({"issue_id": str(tips[0].id), "action": "delete"}, "Choose up, down"),
        ({"issue_id": str(draft.id), "action": "up"}, "not archived or sent"),
        ({"issue_id": "9" * 40, "action": "up"}, "not archived or sent"),
        ({"issue_id": "x", "action": "up"}, "Choose a tip."),
        ({"action": "up"}, "Choose a tip."),
    ]
    for data, message in cases:
        answer = _post(client, **data)
        assert answer.status_code == 400, data
        assert message in answer.get_data(as_text=True), data
    after = db.session.execute(sa.select(SequenceTip.issue_id, SequenceTip.position)).all()
    db.session.rollback()
    assert sorted(after) == sorted(before)
    assert evergreen.sequence(db.session()) == [tips[2].id, tips[0].id, tips[1].id]
    db.session.rollback()
