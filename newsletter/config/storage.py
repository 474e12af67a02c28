"""Where uploaded issue images are kept: the instance folder, or an S3-compatible bucket."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from newsletter.config.parse import ConfigError, read_url

# Where images are kept under the instance path, and under which prefix in a bucket.
IMAGE_FOLDER = "issue-images"
S3_NAMES = ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION")
# S3's rule for a bucket name (lower case, digits, dots and hyphens, 3 to 63 long).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,40}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """An S3-compatible bucket (AWS, MinIO, R2, Garage...) the images are put in."""

    name: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str
    endpoint_url: str | None  # None: AWS itself


def read_bucket(env: Mapping[str, str]) -> Bucket | None:
    """Read S3_BUCKET and its keys; None when no bucket is set (images go to the folder)."""
    values = {name: env.get(name, "").strip() for name in S3_NAMES}
    if not any(values.values()):
        return None
    for needed in ("S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        if not values[needed]:
            raise ConfigError(
                f"{needed}: an image bucket needs S3_BUCKET, S3_ACCESS_KEY_ID and "
                "S3_SECRET_ACCESS_KEY (S3_ENDPOINT_URL and S3_REGION as the store wants)"
            )
    if not _BUCKET.fullmatch(values["S3_BUCKET"]):
        raise ConfigError(
            f"S3_BUCKET: not a bucket name (3-63 lower-case letters, digits, dots, hyphens), "
            f"got {values['S3_BUCKET']!r}"
        )
    region = values["S3_REGION"] or "us-east-1"
    if not _REGION.fullmatch(region):
        raise ConfigError(f"S3_REGION: expected a region such as eu-central-1, got {region!r}")
    return Bucket(
        name=values["S3_BUCKET"],
        access_key_id=values["S3_ACCESS_KEY_ID"],
        secret_access_key=values["S3_SECRET_ACCESS_KEY"],
        region=region,
        endpoint_url=read_url(env, "S3_ENDPOINT_URL", ("http", "https")),
    )


@functools.cache
def s3_client(bucket: Bucket, timeout: float = 20.0, attempts: int = 2) -> Any:
    """Return the boto3 client for ``bucket``: one per bucket, timeouts and process (boto3's
    are thread-safe), with short timeouts so an upload, a reader's fetch or the doctor is
    answered, not hung, while the store is down."""
    import boto3  # here, not at the top: only an instance with a bucket needs it loaded
    import botocore.config

    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},  # what MinIO, Garage and most self-hosted stores want
        connect_timeout=min(5.0, timeout),
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=bucket.endpoint_url,
        region_name=bucket.region,
        aws_access_key_id=bucket.access_key_id,
        aws_secret_access_key=bucket.secret_access_key,
        config=config,
    )
