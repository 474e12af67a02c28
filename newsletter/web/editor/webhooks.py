"""The editor's webhooks page: register a URL for events, read the delivery log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from newsletter.auth.sessions import login_required
from newsletter.extensions import db, settings
from newsletter.models import (
    Webhook,
    WebhookDelivery,
)
from newsletter.webhooks import events as webhooks
from newsletter.webhooks.address import Refused, check_registration

bp = Blueprint("webhooks", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


def _refusal(url: str) -> str | None:
    """Return why a webhook may not be registered for ``url``, or None when it may."""
    try:
        check_registration(url, settings().webhook_allow_hosts)
    except Refused as exc:
        return str(exc)
    return None


@bp.route("/webhooks", methods=["GET", "POST"])
@login_required
def webhooks_page() -> Any:
    """Register a webhook, list them, and show the latest deliveries."""
    code = 200
    new_secret = None
    if request.method == "POST":
        url = (request.form.get("url") or "").strip()
        events = [e for e in request.form.getlist("events") if e in webhooks.EVENTS]
        refusal = _refusal(url)
        if refusal:
            flash(refusal, "error")
            code = 400
        elif not events:
            flash("Pick at least one event.", "error")
            code = 400
        else:
            hook = webhooks.register_webhook(db.session(), url, events)
            db.session.commit()
            new_secret = hook.secret
            flash("Webhook added. Its signing secret is shown below.")
    hooks = db.session.scalars(sa.select(Webhook).order_by(Webhook.id)).all()
    log_rows = db.session.execute(
        sa.select(WebhookDelivery, Webhook.url)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(50)
    ).all()
    return render_template(
        "editor/webhooks.html",
        hooks=hooks,
        log_rows=log_rows,
        events=webhooks.EVENTS,
        new_secret=new_secret,
    ), code


@bp.post("/webhooks/<id:webhook_id>/delete")
@login_required
def delete_webhook(webhook_id: int) -> Any:
    """Delete a webhook and its delivery log."""
    hook = db.session.get(Webhook, webhook_id)
    if hook is None:
        abort(404, "No webhook with that number.")
    db.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    db.session.delete(hook)
    db.session.commit()
    flash("Webhook deleted.")
    return redirect(url_for("webhooks.webhooks_page"))
