"""The client on a stack with S3 storage (moto's server): a direct upload PUTs straight to the bucket through the
presigned URL, a multipart one goes through the gateway, a job runs from both and its result downloads from S3."""

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest
from mimicmotion_client import Client

from tests.support.client_stack import API_KEYS, QUICK
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.redis_server import redis_server
from tests.support.s3 import running_moto_server
from tests.support.service_stack import Stack, stack_env, start_stack

pytestmark = pytest.mark.e2e

BUCKET = "client-uploads"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[Stack, str]]:
    tmp_path = tmp_path_factory.mktemp("client-s3")
    with ExitStack() as stack, running_moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)  # fmt: skip
        redis_url = stack.enter_context(redis_server(tmp_path))
        env = stack_env(
            redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir, api_keys=API_KEYS[0],
            s3_endpoint_url=endpoint, s3_bucket=BUCKET,
        )  # fmt: skip
        yield start_stack(stack, {**env, **AWS}, tmp_path, workers=["w0"]), endpoint


def test_direct_and_multipart_uploads_feed_a_job_whose_result_downloads_from_s3(
    s3_stack: tuple[Stack, str], tmp_path: Path
) -> None:
    services, endpoint = s3_stack
    image = write_image(tmp_path / "me.png", person_image(200, 150, seed=21))
    video = write_video(tmp_path / "dance.mp4", moving_person_frames(3, 96, 128, seed=22), fps=24)
    threshold = video.stat().st_size + 1  # the video goes multipart, the (larger) PNG direct
    assert image.stat().st_size > threshold
    with Client(services.base_url, API_KEYS[0], multipart_threshold_bytes=threshold) as client:
        direct = client.upload(image)
        job = client.run(direct, video, QUICK, timeout=120)
        result = client.download(job, tmp_path / "result.mp4")

    assert direct.status == "ready" and direct.kind == "image"
    assert direct.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert job.status == "succeeded" and job.output is not None
    assert job.output.video_url.startswith(endpoint)  # a presigned S3 URL, fetched without our API key
    assert hashlib.sha256(result.read_bytes()).hexdigest() == job.output.sha256
