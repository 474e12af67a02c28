"""The doctor asks the image bucket (a real S3-compatible server) whether it is there: no upload."""

from __future__ import annotations

import uuid

from newsletter.config import load_settings
from newsletter.doctor.images import check_images
from newsletter.doctor.report import Status
from tests.helpers import free_port
from tests.helpers.s3_server import REGION


def _settings(tmp_path, **env):
    return load_settings({"NEWSLETTER_ENV": "testing", **env}, tmp_path)


def _new_bucket(s3_server) -> str:
    name = f"doctor-{uuid.uuid4().hex[:16]}"
    s3_server.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return name


def _keys(s3_server, bucket: str) -> list[str]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_without_a_bucket_images_stay_in_the_instance_folder(tmp_path):
    check = check_images(_settings(tmp_path))
    assert (check.name, check.status) == ("images", Status.OK)
    assert check.summary == "kept in the instance folder (no S3_BUCKET)"
    assert check.detail == (str(tmp_path / "issue-images"),)


def test_a_bucket_that_is_there_is_ok_and_nothing_is_put_in_it(tmp_path, s3_server):
    name = _new_bucket(s3_server)
    check = check_images(_settings(tmp_path, **s3_server.env(name)))
    assert check.status is Status.OK, check
    assert check.summary == f"bucket {name} at {s3_server.url} takes our keys"
    assert _keys(s3_server, name) == []


def test_a_bucket_that_does_not_exist_fails_and_says_what_to_do(tmp_path, s3_server):
    name = f"missing-{uuid.uuid4().hex[:16]}"
    check = check_images(_settings(tmp_path, **s3_server.env(name)))
    assert check.status is Status.FAIL
    assert check.summary == (
        f"{s3_server.url} has no bucket {name}: create it, or fix S3_BUCKET; "
        "image uploads would fail"
    )


def test_a_store_that_cannot_be_reached_fails_naming_it(tmp_path, s3_server):
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {**s3_server.env("images"), "S3_ENDPOINT_URL": nowhere}
    check = check_images(_settings(tmp_path, **env))
    assert check.status is Status.FAIL
    assert check.summary.startswith(f"could not reach {nowhere} (")
    assert check.summary.endswith("): image uploads and image links would fail")
    assert check.detail == (f"bucket images at {nowhere}, key {env['S3_ACCESS_KEY_ID']}",)
