"""The old home of the outgoing webhook jobs, now ``tasks/webhook_posts.py``.

RQ stores each job by its function's dotted path: a delivery queued or scheduled for retry
before the rename still names ``newsletter.tasks.webhooks.deliver``, and must run when a worker
takes it. Only that job function is kept here; new code imports ``webhook_posts``. (A package
rather than a ``webhooks.py`` file, so the rename stays a plain rename in the history.)
"""

from newsletter.tasks.webhook_posts import deliver

__all__ = ["deliver"]
