"""Issue images in an S3-compatible bucket (a real server on 127.0.0.1): uploads go to the
bucket, are still served from BASE_URL with a year's cache, and bad files stay refused."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image

from newsletter.config import ConfigError, load_settings
from newsletter.extensions import settings
from newsletter.issues import images
from newsletter.issues.actions import create_issue
from tests.helpers import free_port, truncate_all
from tests.helpers.editors import editor_client, page_token
from tests.helpers.s3_server import S3Server


@pytest.fixture
def bucket_app(make_app, s3_server):
    name = f"images-{uuid.uuid4().hex[:16]}"
    s3_server.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    app = make_app(**s3_server.env(name))
    with app.app_context():
        truncate_all()
        yield app, name


def _png(width: int = 2400, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, format="PNG")
    return out.getvalue()


def _upload(client, issue_id: int, data: bytes, filename: str = "p.png", alt: str = "A chart"):
    token = page_token(client, f"/editor/issues/{issue_id}")
    return client.post(
        f"/editor/issues/{issue_id}/images",
        data={"csrf_token": token, "alt": alt, "image": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def _keys(s3_server: S3Server, bucket: str) -> list[str]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_an_upload_goes_to_the_bucket_and_is_served_from_base_url(bucket_app, s3_server):
    app, bucket = bucket_app
    client = editor_client(app)
    issue = create_issue("Pictures", "Look:")
    answer = _upload(client, issue.id, _png())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    url = answer.get_json()["url"]
    assert url.startswith(settings(app).base_url + "/media/issue-images/")
    name = url.rsplit("/", 1)[1]
    assert _keys(s3_server, bucket) == [f"issue-images/{name}"]
    kept = s3_server.client().get_object(Bucket=bucket, Key=f"issue-images/{name}")
    assert kept["ContentType"] == "image/png"
    assert Image.open(io.BytesIO(kept["Body"].read())).size == (images.MAX_WIDTH, 300)
    assert not (settings(app).instance_path / images.FOLDER).exists()  # nothing on disk

    served = app.test_client().get(url.removeprefix(settings(app).base_url))
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert Image.open(io.BytesIO(served.data)).size == (images.MAX_WIDTH, 300)
    cache = served.headers["Cache-Control"]
    assert "max-age=31536000" in cache and "immutable" in cache and "public" in cache
    again = app.test_client().get(
        url.removeprefix(settings(app).base_url),
        headers={"If-None-Match": served.headers["ETag"]},
    )
    assert again.status_code == 304
    # Uploaded twice, one object with one address.
    assert _upload(client, issue.id, _png()).get_json()["url"] == url
    assert len(_keys(s3_server, bucket)) == 1
    assert app.test_client().get("/media/issue-images/" + "0" * 32 + ".png").status_code == 404


@pytest.mark.parametrize(
    ("data", "filename", "said"),
    [
        (b"just some text, not a picture" * 10, "fake.png", "not an image we can read"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>', "e.svg", "SVG"),
        (b"\0" * (11 * 1024 * 1024), "big.png", "larger than 10 MB"),
    ],
)
def test_bad_uploads_stay_refused_and_nothing_reaches_the_bucket(
    bucket_app, s3_server, data, filename, said
):
    app, bucket = bucket_app
    client = editor_client(app)
    issue = create_issue("Pictures", "Look:")
    answer = _upload(client, issue.id, data, filename)
    assert answer.status_code in (400, 413)
    assert said in answer.get_json()["error"]
    assert _keys(s3_server, bucket) == []


def test_a_store_that_cannot_be_reached_is_said_plainly(make_app, s3_server):
    closed = f"http://127.0.0.1:{free_port()}"
    app = make_app(**{**s3_server.env("images"), "S3_ENDPOINT_URL": closed})
    with app.app_context():
        truncate_all()
        client = editor_client(app)
        issue = create_issue("Pictures", "Look:")
        answer = _upload(client, issue.id, _png(40, 40))
        assert answer.status_code == 502
        assert answer.get_json()["error"] == (
            "The image store could not be reached; try again in a moment."
        )
        served = app.test_client().get("/media/issue-images/" + "0" * 32 + ".png")
        assert served.status_code == 503 and served.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"S3_BUCKET": "images"}, "S3_ACCESS_KEY_ID"),
        ({"S3_BUCKET": "images", "S3_ACCESS_KEY_ID": "k"}, "S3_SECRET_ACCESS_KEY"),
        ({"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}, "S3_BUCKET"),
        (
            {"S3_BUCKET": "No_Such Name", "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"},
            "S3_BUCKET",
        ),
        (
            {
                "S3_BUCKET": "images",
                "S3_ACCESS_KEY_ID": "k",
                "S3_SECRET_ACCESS_KEY": "s",
                "S3_ENDPOINT_URL": "ftp://store",
            },
            "S3_ENDPOINT_URL",
        ),
    ],
)
def test_a_half_set_bucket_is_named(tmp_path: Path, env, named):
    with pytest.raises(ConfigError) as info:
        load_settings(env, tmp_path)
    assert str(info.value).startswith(named + ":")
