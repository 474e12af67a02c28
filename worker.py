"""Run one RQ worker (with its scheduler) for Tip of the Week: `python worker.py`."""

from newsletter.cli import _make_app
from newsletter.workers import run_worker

if __name__ == "__main__":
    from dotenv import load_dotenv

    load_dotenv()
    run_worker(_make_app())
