import re
from ipaddress import ip_network
from pathlib import Path

import pytest
from pydantic import SecretStr

from cli.main import main
from core.contract.queues import QueueRoute
from core.settings import Settings, get_settings

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


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("worker_queues", "gpu, gpu-80g", ["gpu", "gpu-80g"]),
        ("tile_devices", "cuda:1,cuda:2,", ["cuda:1", "cuda:2"]),
        ("queue_routes", "768=gpu-80gb, 0=gpu", [QueueRoute(0, "gpu"), QueueRoute(768, "gpu-80gb")]),
        ("fetch_allowed_networks", "127.0.0.0/8, ::1/128", [ip_network("127.0.0.0/8"), ip_network("::1/128")]),
        ("webhook_retry_schedule_s", "0,5,300", (0.0, 5.0, 300.0)),
    ],
)
def test_list_settings_parse_their_comma_separated_environment_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: object
) -> None:
    monkeypatch.setenv(f"MIMICMOTION_{name.upper()}", value)
    assert getattr(Settings(), name) == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("worker_queues", " , ", "MIMICMOTION_WORKER_QUEUES ' , ': name at least one queue, e.g. gpu"),
        ("queue_routes", "0=gpu,x=gpu", "queue route 'x=gpu' is not MIN_RESOLUTION=QUEUE (e.g. 768=gpu-80gb)"),
        ("fetch_allowed_networks", "127.0.0.0/8,intranet", "fetch_allowed_networks: 'intranet' is not a CIDR network"),
        ("fetch_allowed_networks", "10.0.0.1/8", "'10.0.0.1/8' is not a CIDR network (10.0.0.1/8 has host bits set)"),
        ("webhook_retry_schedule_s", "0,five", "'0,five' is not a comma-separated list of seconds, e.g. 0,5,300"),
        ("webhook_retry_schedule_s", "5,-1", "'5,-1': give at least one delay, none negative"),
    ],
)
def test_list_settings_refuse_a_bad_environment_value_saying_why(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"MIMICMOTION_{name.upper()}", value)
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings()


def test_api_keys_are_split_into_secrets_that_no_repr_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMICMOTION_API_KEYS", " key-alpha, key-beta ,")
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == ["key-alpha", "key-beta"]
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    assert "key-alpha" not in shown and "key-beta" not in shown
    assert Settings(api_keys=SecretStr("key-alpha,key-beta")).api_keys == settings.api_keys
    assert Settings(api_keys="").api_keys == ()


def test_readme_defaults_are_the_environment_form_of_the_typed_defaults() -> None:
    rows = dict(re.findall(r"^\| `MIMICMOTION_(\w+)` \| (.+?) \|", README.read_text(), flags=re.MULTILINE))
    for name in ("worker_queues", "tile_devices", "queue_routes", "fetch_allowed_networks", "api_keys",
                 "webhook_retry_schedule_s", "lease_s"):  # fmt: skip
        text = rows[name.upper()].strip("`").replace("(empty)", "")
        assert getattr(Settings(**{name: text}), name) == Settings.model_fields[name].default, name


def test_cli_prints_a_bad_setting_as_one_line_with_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIMICMOTION_FETCH_ALLOWED_NETWORKS", "intranet")
    monkeypatch.setenv("MIMICMOTION_API_KEYS", "key-alpha")
    get_settings.cache_clear()
    try:
        assert main(["pose", "--image", "i.png", "--video", "v.mp4", "--out", "poses"]) == 2
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith(
        "mimicmotion: error [invalid_configuration]: fetch_allowed_networks: 'intranet' is not a CIDR network"
    )
    assert error.count("\n") == 1 and "key-alpha" not in error
