"""Settings: generated secrets in the data directory, environment overrides and defaults."""

import os
import stat
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from runtime.core.settings import (
    JWT_SECRET_FILE,
    SECRET_KEY_FILE,
    Settings,
    load_secret,
    read_or_create_secret,
)

# Each connection limit: its variable, attribute and default.
LIMITS = {
    "STREAMSPACE_MAX_BODY_BYTES": ("max_body_bytes", 1_048_576),
    "STREAMSPACE_WS_INIT_TIMEOUT": ("ws_init_timeout", 10.0),
    "STREAMSPACE_WS_INIT_MAX_BYTES": ("ws_init_max_bytes", 65_536),
    "STREAMSPACE_HEADER_TIMEOUT": ("header_timeout", 10.0),
    "STREAMSPACE_BODY_TIMEOUT": ("body_timeout", 30.0),
    "STREAMSPACE_MAX_HEADER_BYTES": ("max_header_bytes", 65_536),
    "STREAMSPACE_KEEP_ALIVE_TIMEOUT": ("keep_alive_timeout", 5),
    "STREAMSPACE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", 30),
    "STREAMSPACE_MAX_CONCURRENCY": ("max_concurrency", 4096),
}
SECONDS = {name for name, (_, default) in LIMITS.items() if isinstance(default, float)}

ENVIRONMENT = [
    "STREAMSPACE_DATA_DIR",
    "STREAMSPACE_DATABASE_URL",
    "STREAMSPACE_BROADCAST_URL",
    "STREAMSPACE_JWT_SECRET",
    "STREAMSPACE_SECRET_KEY",
    "STREAMSPACE_PORT",
    "STREAMSPACE_LOG_LEVEL",
    "STREAMSPACE_ALLOWED_NETWORKS",
    "STREAMSPACE_FILE_REPOSITORY_ROOTS",
    "STREAMSPACE_FAST_PATHS",
    *LIMITS,
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_a_secret_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "jwt-secret"
    first = read_or_create_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["jwt-secret"]


def test_a_secret_says_whether_this_call_created_it(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    value, created = load_secret(path)
    assert created
    assert load_secret(path) == (value, False)


def test_the_data_directory_made_for_the_secrets_is_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        Settings.load(data_dir=str(tmp_path / "data"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for name in (JWT_SECRET_FILE, SECRET_KEY_FILE):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600


def test_only_the_load_that_generates_the_signing_secret_is_the_first_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, later = Settings.load(data_dir=str(tmp_path)), Settings.load(data_dir=str(tmp_path))
    assert first.jwt_secret_created and not later.jwt_secret_created
    monkeypatch.setenv("STREAMSPACE_JWT_SECRET", "jwt-from-the-environment")
    assert not Settings.load(data_dir=str(tmp_path / "other")).jwt_secret_created


def test_a_secret_written_by_the_operator_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("chosen-by-the-operator\n")
    assert read_or_create_secret(path) == "chosen-by-the-operator"


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_or_create_secret(path)


def test_the_defaults_live_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=str(tmp_path))
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite://{tmp_path.resolve() / 'streamspace.db'}"
    assert settings.broadcast_url == "memory://"
    assert settings.jwt_secret == (tmp_path / JWT_SECRET_FILE).read_text()
    assert settings.secret_key == (tmp_path / SECRET_KEY_FILE).read_text()
    assert settings.jwt_secret != settings.secret_key
    assert settings.jwt_secret_generated


def test_two_loads_with_one_data_directory_agree(tmp_path: Path) -> None:
    first, second = Settings.load(data_dir=str(tmp_path)), Settings.load(data_dir=str(tmp_path))
    assert (first.jwt_secret, first.secret_key) == (second.jwt_secret, second.secret_key)


def test_the_data_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_DATA_DIR", str(tmp_path / "env-dir"))
    settings = Settings.load()
    assert settings.data_dir == (tmp_path / "env-dir").resolve()
    assert (tmp_path / "env-dir" / JWT_SECRET_FILE).exists()


def test_environment_variables_override_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_DATABASE_URL", "postgres://db.test/streamspace")
    monkeypatch.setenv("STREAMSPACE_BROADCAST_URL", "redis://127.0.0.1:6379")
    monkeypatch.setenv("STREAMSPACE_JWT_SECRET", "jwt-from-the-environment")
    monkeypatch.setenv("STREAMSPACE_SECRET_KEY", "key-from-the-environment")
    monkeypatch.setenv("STREAMSPACE_PORT", "9090")
    monkeypatch.setenv("STREAMSPACE_LOG_LEVEL", "debug")
    settings = Settings.load(data_dir=str(tmp_path))
    assert settings.database_url == "postgres://db.test/streamspace"
    assert settings.broadcast_url == "redis://127.0.0.1:6379"
    assert settings.jwt_secret == "jwt-from-the-environment"
    assert settings.secret_key == "key-from-the-environment"
    assert not settings.jwt_secret_generated
    assert (settings.port, settings.log_level) == (9090, "DEBUG")
    # Secrets given by the environment are not also generated on disk.
    assert list(tmp_path.iterdir()) == []


def test_flags_override_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSPACE_DATABASE_URL", "postgres://db.test/from-env")
    settings = Settings.load(data_dir=str(tmp_path), database_url="sqlite://flag.db", port=7000)
    assert (settings.database_url, settings.port) == ("sqlite://flag.db", 7000)


def test_an_empty_environment_variable_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_JWT_SECRET", "")
    settings = Settings.load(data_dir=str(tmp_path))
    assert settings.jwt_secret == (tmp_path / JWT_SECRET_FILE).read_text()


# --- the address policy ---------------------------------------------------------------------


def test_by_default_only_public_addresses_and_the_data_directory_are_reached(
    tmp_path: Path,
) -> None:
    settings = Settings.load(data_dir=str(tmp_path))
    assert (settings.allowed_networks, settings.file_repository_roots) == ((), ())
    policy = settings.address_policy()
    assert not policy.permits(ip_address("127.0.0.1"))
    assert not policy.permits(ip_address("10.0.0.1"))
    assert policy.permits(ip_address("93.184.216.34"))
    assert policy.file_roots == (tmp_path.resolve(),)


def test_allowed_networks_and_file_roots_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8")
    monkeypatch.setenv("STREAMSPACE_FILE_REPOSITORY_ROOTS", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    settings = Settings.load(data_dir=str(tmp_path / "data"))
    assert settings.allowed_networks == (ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8"))
    policy = settings.address_policy()
    assert policy.permits(ip_address("127.0.0.1")) and policy.permits(ip_address("10.9.9.9"))
    assert not policy.permits(ip_address("192.168.0.1"))
    assert policy.file_roots == tuple((tmp_path / name).resolve() for name in ("data", "a", "b"))


def test_the_flags_win_even_when_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSPACE_ALLOWED_NETWORKS", "0.0.0.0/0")
    monkeypatch.setenv("STREAMSPACE_FILE_REPOSITORY_ROOTS", "/")
    settings = Settings.load(
        data_dir=str(tmp_path), allowed_networks="", file_repository_roots=str(tmp_path / "r")
    )
    assert settings.allowed_networks == ()
    assert settings.file_repository_roots == ((tmp_path / "r").resolve(),)


def test_a_malformed_network_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_ALLOWED_NETWORKS", "127.0.0.0/8,intranet")
    with pytest.raises(ValueError, match=r"STREAMSPACE_ALLOWED_NETWORKS.*'intranet'"):
        Settings.load(data_dir=str(tmp_path))


def test_connection_limits_have_defaults(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=str(tmp_path))
    for attribute, default in LIMITS.values():
        assert getattr(settings, attribute) == default, attribute


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_a_connection_limit_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    attribute, _ = LIMITS[name]
    value = "2.5" if name in SECONDS else "7"
    monkeypatch.setenv(name, value)
    assert getattr(Settings.load(data_dir=str(tmp_path)), attribute) == float(value)


@pytest.mark.parametrize("name", sorted(LIMITS))
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_connection_limit_that_is_not_a_positive_number_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}=") as raised:
        Settings.load(data_dir=str(tmp_path))
    assert value in str(raised.value)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_seconds_must_be_finite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STREAMSPACE_BODY_TIMEOUT", value)
    with pytest.raises(ValueError, match="STREAMSPACE_BODY_TIMEOUT"):
        Settings.load(data_dir=str(tmp_path))


def test_the_fast_paths_are_on_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load(data_dir=str(tmp_path)).fast_paths is True
    for off in ("0", "false", "No", "OFF"):
        monkeypatch.setenv("STREAMSPACE_FAST_PATHS", off)
        assert Settings.load(data_dir=str(tmp_path)).fast_paths is False
    monkeypatch.setenv("STREAMSPACE_FAST_PATHS", "1")
    assert Settings.load(data_dir=str(tmp_path)).fast_paths is True
    # serve --no-fast-paths wins over the environment.
    assert Settings.load(data_dir=str(tmp_path), fast_paths=False).fast_paths is False


def test_a_fast_paths_value_neither_on_nor_off_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSPACE_FAST_PATHS", "sometimes")
    with pytest.raises(ValueError, match="STREAMSPACE_FAST_PATHS='sometimes'"):
        Settings.load(data_dir=str(tmp_path))
