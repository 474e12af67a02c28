"""The image store: the instance folder, or an S3-compatible bucket the app can reach.

Only read: the bucket is asked whether it is there and takes our keys (HEAD), nothing is put.
"""

from __future__ import annotations

import botocore.exceptions

from newsletter.config import Settings
from newsletter.config.storage import IMAGE_FOLDER, s3_client
from newsletter.doctor.report import Check, Status


def check_images(settings: Settings, timeout: float = 10.0) -> Check:
    """Check that the bucket S3_BUCKET names exists and takes our keys (ok without a bucket).

    One attempt, waiting at most ``timeout`` seconds for each step.
    """
    bucket = settings.image_bucket
    if bucket is None:
        folder = settings.instance_path / IMAGE_FOLDER
        return Check(
            "images", Status.OK, "kept in the instance folder (no S3_BUCKET)", (str(folder),)
        )
    where = bucket.endpoint_url or f"AWS S3 ({bucket.region})"
    detail = (f"bucket {bucket.name} at {where}, key {bucket.access_key_id}",)
    try:
        s3_client(bucket, timeout, 1).head_bucket(Bucket=bucket.name)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            summary = f"{where} has no bucket {bucket.name}: create it, or fix S3_BUCKET"
        elif code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            summary = (
                f"{where} refused our keys for the bucket {bucket.name} ({code}): check "
                "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and the key's rights on the bucket"
            )
        else:
            summary = f"{where} answered {code or 'an error'} for the bucket {bucket.name}"
        return Check("images", Status.FAIL, summary + "; image uploads would fail", detail)
    except botocore.exceptions.BotoCoreError as exc:
        return Check(
            "images",
            Status.FAIL,
            f"could not reach {where} ({exc}): image uploads and image links would fail",
            detail,
        )
    return Check("images", Status.OK, f"bucket {bucket.name} at {where} takes our keys", detail)
