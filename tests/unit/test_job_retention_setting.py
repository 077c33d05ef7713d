"""job_retention_s: its default is the store's, and it cannot be shorter than a webhook's retries."""

import pytest

from core.contract.records import DEFAULT_JOB_RETENTION_S
from core.settings import Settings


def test_job_retention_default_is_the_stores_default() -> None:
    assert Settings.model_fields["job_retention_s"].default == DEFAULT_JOB_RETENTION_S == 604800


def test_job_retention_minimum_outlasts_the_default_webhook_retries_with_jitter() -> None:
    default_schedule = Settings.model_fields["webhook_retry_schedule_s"].default
    retries_s = sum(default_schedule) * 1.1
    with pytest.raises(ValueError, match="job_retention_s"):
        Settings(job_retention_s=int(retries_s))
    assert Settings(job_retention_s=2 * 24 * 3600).job_retention_s > retries_s


def test_a_retry_schedule_longer_than_the_retention_is_refused_naming_both_settings() -> None:
    three_days = ",".join(["86400"] * 3)
    with pytest.raises(ValueError, match="MIMICMOTION_JOB_RETENTION_S or shorten MIMICMOTION_WEBHOOK_RETRY"):
        Settings(webhook_retry_schedule_s=three_days, job_retention_s=3 * 86400)  # 3.3 days with jitter
    assert Settings(webhook_retry_schedule_s=three_days).job_retention_s == 7 * 86400  # the default outlasts it
