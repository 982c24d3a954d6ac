"""Configuration: env, .env, flags override env, mode and key kind from the prefix."""

from __future__ import annotations

import argparse

import pytest

from stripe_identity_mcp.cli import add_serve_flags, settings_from_args
from stripe_identity_mcp.settings import ConfigError, Settings


@pytest.mark.parametrize(
    ("key", "mode", "kind"),
    [("sk_test_x", "test", "secret"), ("sk_live_x", "live", "secret"), ("rk_test_x", "test", "restricted"),
     ("rk_live_x", "live", "restricted")],
)  # fmt: skip
def test_mode_and_kind_from_prefix(key, mode, kind):
    s = Settings(_env_file=None, api_key=key)
    assert (s.mode, s.key_kind) == (mode, kind)
    assert s.rate == (100.0 if mode == "live" else 25.0)


def test_dotenv_is_read_and_env_overrides_it(tmp_path, monkeypatch):
    for var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_SCIM_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("STRIPE_API_KEY=rk_test_fromfile\nSTRIPE_API_BASE=http://127.0.0.1:1/\n")
    s = Settings(_env_file=env_file)
    assert s.key_kind == "restricted" and s.api_base == "http://127.0.0.1:1"
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_fromenv")
    assert Settings(_env_file=env_file).mode == "live"


def test_flags_override_env(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_env")
    monkeypatch.setenv("STRIPE_IDENTITY_MCP_TOOLSETS", "customers")
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    args = parser.parse_args(["--api-key", "sk_live_flag", "--toolsets", "customers,connect", "--allow-writes"])
    s = settings_from_args(args)
    assert s.mode == "live" and s.toolsets == ("customers", "connect") and s.allow_writes
    assert not s.writes_enabled and "allow-live-writes" in (s.writes_off_reason or "")


def test_unknown_toolset_and_bad_prefix_are_clear():
    with pytest.raises(ValueError, match="unknown toolsets"):
        Settings(_env_file=None, api_key="sk_test_x", toolsets="customers,teams")
    with pytest.raises(ConfigError, match="must start with"):
        _ = Settings(_env_file=None, api_key="pk_test_x").mode


def test_secret_never_in_repr():
    s = Settings(_env_file=None, api_key="sk_test_supersecret", scim_token="scimsecret")
    assert "supersecret" not in repr(s) and "scimsecret" not in repr(s)
    assert s.secrets() == ["sk_test_supersecret", "scimsecret"]
