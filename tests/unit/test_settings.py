from pathlib import Path

import pytest

from core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_read_the_fixed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMICMOTION_MODEL_DIR", "/models/mm")
    monkeypatch.setenv("MIMICMOTION_DEVICE", "cuda")
    monkeypatch.setenv("MIMICMOTION_DECODE_CHUNK_SIZE", "4")
    settings = Settings()
    assert settings.model_dir == Path("/models/mm")
    assert settings.device == "cuda"
    assert settings.decode_chunk_size == 4


def test_settings_reject_an_unknown_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMICMOTION_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device"):
        Settings()


def test_every_setting_has_a_description_and_a_readme_row() -> None:
    readme = README.read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"| `MIMICMOTION_{name.upper()}` |" in readme, f"README lacks a row for {name}"


def test_settings_errors_do_not_echo_rejected_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMICMOTION_WEBHOOK_SECRET", "not-a-whsec-but-secret-material")
    with pytest.raises(ValueError) as info:
        Settings()
    assert "secret-material" not in str(info.value)
