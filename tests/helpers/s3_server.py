"""A real S3-compatible server on 127.0.0.1 (moto's server, run as its own process)."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

import boto3

from tests.helpers import free_port

ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-key", "eu-central-1"


@dataclass
class S3Server:
    """The server's address and a client for the tests' own looks into the buckets."""

    url: str
    process: subprocess.Popen[str]

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def env(self, bucket: str) -> dict[str, str]:
        """Return the settings an operator would set for ``bucket`` on this server."""
        return {
            "S3_ENDPOINT_URL": self.url,
            "S3_BUCKET": bucket,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_REGION": REGION,
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_s3_server() -> S3Server:
    """Start the server and return once it listens (it says so on its output)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    said = []
    for line in process.stdout:
        said.append(line)
        if "Running on" in line:
            break
    else:
        raise RuntimeError("the S3 server did not start: " + "".join(said))
    # Its request log is read on and dropped, so a full pipe never stops the server.
    threading.Thread(target=process.stdout.read, name="s3-log", daemon=True).start()
    return S3Server(f"http://127.0.0.1:{port}", process)
