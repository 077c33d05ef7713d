"""upload_results: storage faults retried with backoff; both files stored or neither."""

from pathlib import Path

import pytest

from core.errors import StorageError
from core.execution.upload import ResultFile, upload_results
from core.settings import Settings
from core.storage import LocalStorage, StoredObject


class FlakyStorage(LocalStorage):
    """Real local storage whose puts fail while ``failures`` has entries for the key."""

    def __init__(self, settings: Settings, failures: dict[str, int]) -> None:
        super().__init__(settings)
        self.failures = failures
        self.puts: list[str] = []

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        self.puts.append(key)
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise StorageError(f"uploading {key} failed: connection refused")
        return super().put_file(key, path, content_type)


@pytest.fixture
def files(tmp_path: Path) -> list[ResultFile]:
    (tmp_path / "pose.mp4").write_bytes(b"pose")
    (tmp_path / "output.mp4").write_bytes(b"output")
    return [ResultFile("jobs/j1/pose.mp4", tmp_path / "pose.mp4", "video/mp4"),
            ResultFile("jobs/j1/output.mp4", tmp_path / "output.mp4", "video/mp4")]  # fmt: skip


def test_upload_results_retries_with_doubling_backoff(tmp_path: Path, files: list[ResultFile]) -> None:
    storage = FlakyStorage(Settings(data_dir=tmp_path / "data"), {"jobs/j1/output.mp4": 2})
    waits: list[float] = []

    stored = upload_results(storage, files, attempts=3, backoff_s=0.5, sleep=waits.append)

    assert [item.key for item in stored] == ["jobs/j1/pose.mp4", "jobs/j1/output.mp4"]
    assert waits == [0.5, 1.0]
    assert storage.exists("jobs/j1/output.mp4") and storage.exists("jobs/j1/pose.mp4")


def test_upload_results_gives_up_and_removes_the_partial_result(tmp_path: Path, files: list[ResultFile]) -> None:
    storage = FlakyStorage(Settings(data_dir=tmp_path / "data"), {"jobs/j1/output.mp4": 99})
    waits: list[float] = []

    with pytest.raises(StorageError, match=r"failed after 4 tries .*connection refused"):
        upload_results(storage, files, attempts=4, backoff_s=0.1, sleep=waits.append)

    assert storage.puts.count("jobs/j1/output.mp4") == 4
    assert waits == pytest.approx([0.1, 0.2, 0.4])
    assert not storage.exists("jobs/j1/pose.mp4")  # stored first, removed again
