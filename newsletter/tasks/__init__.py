"""The only code that knows RQ: queues, jobs, dispatch, the worker and its periodic tick."""
