"""Run one RQ worker (with its scheduler) for Tip of the Week: `python worker.py`."""

from newsletter.main import make_app
from newsletter.tasks.worker import run_worker

if __name__ == "__main__":
    run_worker(make_app())
