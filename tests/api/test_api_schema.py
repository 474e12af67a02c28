"""The OpenAPI document and the JSON the API really sends agree, key for key and type for type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from newsletter.extensions import db
from newsletter.models import IssueStatus, SubscriberStatus
from tests.helpers.editors import bearer

PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "null": (type(None),),
    "array": (list,),
    "boolean": (bool,),
}


def is_aware(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def schemas_of(app: Any) -> dict[str, Any]:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    return doc["components"]["schemas"]


def mismatches(body: dict[str, Any], schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """Return how ``body`` breaks its component schema (empty when it matches)."""
    props = schema["properties"]
    found = [f"{key}: sent, not documented" for key in body if key not in props]
    found += [f"{key}: required, not sent" for key in schema.get("required", []) if key not in body]
    for key, value in body.items():
        if key not in props:
            continue
        prop = props[key]
        if "$ref" in prop:
            found += mismatches(value, schemas[prop["$ref"].rsplit("/", 1)[1]], schemas)
            continue
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        # bool is an int to Python, never to JSON Schema.
        wrong_bool = isinstance(value, bool) != ("boolean" in types and isinstance(value, bool))
        if wrong_bool or not any(isinstance(value, PYTHON_TYPES[t]) for t in types):
            found.append(f"{key}: {value!r} is not {types}")
        elif "enum" in prop and value not in prop["enum"]:
            found.append(f"{key}: {value!r} not in {prop['enum']}")
        elif prop.get("type") == "array" and not all(isinstance(v, str) for v in value):
            found.append(f"{key}: {value!r} is not a list of strings")
        elif prop.get("format") == "date-time" and value is not None and not is_aware(value):
            found.append(f"{key}: {value!r} is not an ISO 8601 time with a zone")
    return found


def test_subscriber_json_is_exactly_its_schema(app, make_subscriber):
    schemas = schemas_of(app)
    schema = schemas["Subscriber"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])  # every key, always sent
    assert schema["properties"]["status"]["enum"] == [s.value for s in SubscriberStatus]

    fresh = make_subscriber("fresh@example.com", "pending", "Fresh")
    gone = make_subscriber("gone@example.com", "bounced", "Gone")
    now = datetime.now(UTC)
    gone.confirmed_at = gone.unsubscribed_at = gone.bounced_at = now  # every nullable key set
    db.session.commit()
    client, auth = app.test_client(), bearer(app)
    for sub in (fresh, gone):
        body = client.get(f"/api/v1/subscribers/{sub.id}", headers=auth).get_json()
        assert set(body) == set(schema["properties"])
        assert mismatches(body, schema, schemas) == []
    listed = client.get("/api/v1/subscribers", headers=auth).get_json()
    assert len(listed["data"]) == 2
    assert [mismatches(row, schema, schemas) for row in listed["data"]] == [[], []]


def test_issue_json_is_exactly_its_schema(app, make_subscriber):
    schemas = schemas_of(app)
    schema = schemas["Issue"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    issue_status = [s.value for s in IssueStatus]
    assert schema["properties"]["status"]["enum"] == issue_status
    assert schemas["IssueProgress"]["properties"]["status"]["enum"] == issue_status

    make_subscriber("reader@example.com", "confirmed")
    client, auth = app.test_client(), bearer(app)
    made = client.post("/api/v1/issues", headers=auth, json={"subject": "Tip", "body_md": "Hi."})
    assert made.status_code == 201
    assert mismatches(made.get_json(), schema, schemas) == []
    iid = made.get_json()["id"]
    scheduled = client.post(
        f"/api/v1/issues/{iid}/send", headers=auth, json={"at": "2099-01-04T09:00:00+01:00"}
    ).get_json()
    assert mismatches(scheduled, schemas["ActionResult"], schemas) == []
    sent = client.post(f"/api/v1/issues/{iid}/send", headers=auth).get_json()
    assert sent["issue"]["queued_at"] is not None and sent["issue"]["status"] == "sending"
    for body in (scheduled["issue"], sent["issue"]):
        assert set(body) == set(schema["properties"])
        assert mismatches(body, schema, schemas) == []
    progress = client.get(f"/api/v1/issues/{iid}/status", headers=auth).get_json()
    assert mismatches(progress, schemas["IssueProgress"], schemas) == []


def test_query_and_patch_enums_come_from_the_model(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    (status_param,) = [
        p for p in doc["paths"]["/subscribers"]["get"]["parameters"] if p["name"] == "status"
    ]
    assert status_param["schema"]["enum"] == [s.value for s in SubscriberStatus]
    settable = doc["components"]["schemas"]["SubscriberPatch"]["properties"]["status"]["enum"]
    assert set(settable) < {s.value for s in SubscriberStatus}
