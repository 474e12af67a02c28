"""Where issue images are kept: the instance folder, or an S3-compatible bucket when S3_BUCKET
is set. Either way they are served from BASE_URL (the app streams them from the bucket), so a
mail's links never depend on the bucket being public or on its address."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import botocore.exceptions

from newsletter.config import Bucket, Settings
from newsletter.config.storage import IMAGE_FOLDER, s3_client
from newsletter.errors import Upstream

FOLDER = IMAGE_FOLDER
CACHE_SECONDS = 365 * 24 * 3600  # names come from the content: an address never changes
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_UNREACHABLE = "The image store could not be reached; try again in a moment."


class ImageStore(Protocol):
    """Keeps image files by name."""

    def put(self, name: str, data: bytes) -> None:
        """Keep ``data`` as ``name`` (the same name always holds the same bytes)."""

    def get(self, name: str) -> bytes | None:
        """Return the bytes kept as ``name``, or None when there is no such image."""


class FolderStore:
    """Images in a folder of the instance path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, name: str, data: bytes) -> None:
        """Write the file through a temporary name, so no reader sees half of it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if not target.exists():
            partial = self.folder / f".{name}.part"
            partial.write_bytes(data)
            partial.replace(target)

    def get(self, name: str) -> bytes | None:
        """Read the file, if it is there."""
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None


class BucketStore:
    """Images in an S3-compatible bucket, under ``issue-images/``."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def _key(self, name: str) -> str:
        return f"{FOLDER}/{name}"

    def put(self, name: str, data: bytes) -> None:
        """Upload the file with its type and a year's cache lifetime."""
        try:
            s3_client(self.bucket).put_object(
                Bucket=self.bucket.name,
                Key=self._key(name),
                Body=data,
                ContentType=CONTENT_TYPES[name.rsplit(".", 1)[1]],
                CacheControl=f"public, max-age={CACHE_SECONDS}, immutable",
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            raise Upstream(_UNREACHABLE) from None

    def get(self, name: str) -> bytes | None:
        """Download the file; None when the bucket has no such key."""
        try:
            answer = s3_client(self.bucket).get_object(Bucket=self.bucket.name, Key=self._key(name))
            return bytes(answer["Body"].read())
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise Upstream(_UNREACHABLE) from None
        except botocore.exceptions.BotoCoreError:
            raise Upstream(_UNREACHABLE) from None


def image_store(settings: Settings) -> ImageStore:
    """Return the store the settings name: the bucket when S3_BUCKET is set, else the folder."""
    if settings.image_bucket is not None:
        return BucketStore(settings.image_bucket)
    return FolderStore(settings.instance_path / FOLDER)
