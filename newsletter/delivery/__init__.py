"""The delivery engine: plan a send, claim deliveries, send them, record each outcome.

No Flask and no RQ here: every function takes a SQLAlchemy session (and what else it needs),
so a job, a command or a test can drive it. The database is the only source of truth:

* ``audience`` says who receives an issue (one select, used by the plan, the editor's count
  and the re-checks of each claim); ``issue_state`` is the table of an issue's moves and the
  one function that writes its status.
* ``plan.queue_issue`` snapshots the audience into one Delivery row each, in one
  INSERT ... SELECT, guarded by a conditional UPDATE of the issue (one send per issue).
* ``batch.run_batch`` claims a few deliveries at a time (``claims``) with a conditional
  UPDATE and a lease, sends each over one reused SMTP connection, and commits each outcome
  (``outcomes``) right after the server answers.
* ``lifecycle`` finishes, pauses, resumes and cancels sends, and its ``reconcile`` takes
  back the leases of dead workers; ``progress`` counts; ``message`` builds each copy.
"""
