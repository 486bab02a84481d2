"""Settings resolve flag > env > file > default and refuse invalid values by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from strata.agent.config import documented_keys, load, parse_duration_s, parse_size_bytes
from strata.agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strata.toml"
    path.write_text(text)
    return path


def test_defaults_bind_loopback() -> None:
    """With nothing configured the agent binds 127.0.0.1 on the standard ports."""
    settings = load(None, {})
    assert (settings.host, settings.otlp_port, settings.api_port) == ("127.0.0.1", 4318, 8321)
    assert settings.capture_content is False


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    """A flag beats the env var, which beats the file, which beats the default."""
    path = write(tmp_path, '[agent]\notlp_port = 5000\napi_port = 5001\ndb = "file.duckdb"\n'
                           "[carbon]\npue = 1.5\n")
    env = {"STRATA_OTLP_PORT": "6000", "STRATA_CARBON_PUE": "1.1"}
    settings = load(path, env, otlp_port=7000)
    assert settings.otlp_port == 7000
    assert settings.api_port == 5001
    assert settings.db == "file.duckdb"
    assert settings.carbon_pue == 1.1
    assert load(path, env).otlp_port == 6000


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STRATA_OTLP_PORT": "abc"}, "STRATA_OTLP_PORT"),
        ({"STRATA_API_PORT": "70000"}, "STRATA_API_PORT"),
        ({"STRATA_GPU_INTERVAL": "soon"}, "STRATA_GPU_INTERVAL"),
        ({"STRATA_CARBON_PUE": "-1"}, "STRATA_CARBON_PUE"),
        ({"STRATA_CAPTURE_CONTENT": "maybe"}, "STRATA_CAPTURE_CONTENT"),
        ({"STRATA_FORWARD_MAX_QUEUE_BYTES": "lots"}, "STRATA_FORWARD_MAX_QUEUE_BYTES"),
    ],
)
def test_invalid_env_values_name_the_setting(env: dict[str, str], named: str) -> None:
    """An invalid value raises ConfigError whose message names the variable."""
    with pytest.raises(ConfigError, match=named):
        load(None, env)


def test_scrape_targets_validated(tmp_path: Path) -> None:
    """[[scrape]] tables are parsed; an unknown profile or timeout > interval is refused."""
    ok = write(tmp_path, '[[scrape]]\nname = "vllm-a"\nurl = "http://127.0.0.1:8000/metrics"\n'
                         'interval = "15s"\nprofile = "vllm"\n')
    (target,) = load(ok, {}).scrape
    assert (target.name, target.profile, target.interval_s, target.timeout_s) == (
        "vllm-a", "vllm", 15.0, 10.0)
    bad = write(tmp_path, '[[scrape]]\nname = "x"\nurl = "http://h/metrics"\nprofile = "mongo"\n')
    with pytest.raises(ConfigError, match="profile"):
        load(bad, {})
    slow = write(tmp_path, '[[scrape]]\nname = "x"\nurl = "http://h/m"\ninterval = "5s"\n'
                           'timeout = "10s"\n')
    with pytest.raises(ConfigError, match="must not exceed interval"):
        load(slow, {})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    """A broken or missing config file is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[agent\n"), {})
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", {})


def test_units() -> None:
    """Durations and sizes accept units and refuse nonsense."""
    assert parse_duration_s("500ms", "x") == 0.5
    assert parse_duration_s("2h", "x") == 7200
    assert parse_size_bytes("512MiB", "x") == 512 * 1024**2
    with pytest.raises(ConfigError):
        parse_size_bytes("0", "x")


def test_every_key_has_an_env_var() -> None:
    """The documented keys map [agent] keys to STRATA_KEY and others to STRATA_TABLE_KEY."""
    names = {(t, k): env for t, k, env, _ in documented_keys()}
    assert names[("agent", "db")] == "STRATA_DB"
    assert names[("carbon", "grid_gco2e_per_kwh")] == "STRATA_CARBON_GRID_GCO2E_PER_KWH"


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    """A typo in a key or table is an error naming it, not a silent default."""
    with pytest.raises(ConfigError, match="otlp_prot"):
        load(write(tmp_path, "[agent]\notlp_prot = 1\n"), {})
    with pytest.raises(ConfigError, match=r"\[carbn\]"):
        load(write(tmp_path, "[carbn]\npue = 1.1\n"), {})
    with pytest.raises(ConfigError, match="intervall"):
        load(write(tmp_path, '[[scrape]]\nname = "a"\nurl = "http://h/m"\nintervall = "5s"\n'), {})


def test_example_configs_load() -> None:
    """Every strata.toml shipped in examples/ loads."""
    from tests.conftest import REPO

    paths = list((REPO / "examples").rglob("strata*.toml"))
    assert paths
    for path in paths:
        load(path, {})


def test_gpu_map_from_file_or_env(tmp_path: Path) -> None:
    path = tmp_path / "strata.toml"
    path.write_text('[[gpu_map]]\naddress = "10.0.0.7:8000"\nhost = "gpu-a"\n'
                    'gpus = ["GPU-1", "GPU-2"]\n')
    [entry] = load(path).gpu_map
    assert (entry.address, entry.host, entry.gpus) == ("10.0.0.7:8000", "gpu-a",
                                                       ("GPU-1", "GPU-2"))
    env = {"STRATA_GPU_MAP": "vllm:8000=gpu-b; 10.0.0.9=gpu-c/GPU-9"}
    assert [(e.address, e.host, e.gpus) for e in load(path, env).gpu_map] == [
        ("vllm:8000", "gpu-b", ()), ("10.0.0.9", "gpu-c", ("GPU-9",))]
    assert load().gpu_hour_usd is None  # the list price of each GPU's model
    for bad in ("vllm", "=gpu-b"):
        with pytest.raises(ConfigError, match="STRATA_GPU_MAP"):
            load(environ={"STRATA_GPU_MAP": bad})
    path.write_text('[[gpu_map]]\naddress = "x"\nhost = "h"\nport = 1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load(path)
