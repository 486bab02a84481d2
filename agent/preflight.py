"""Checks ``strata agent`` makes before importing the heavy parts (fast refusal, S2).

- a non-loopback bind needs an API token, unless explicitly allowed (RELIABILITY S2);
- the database directory must not be writable by other users: DuckDB trusts its file
  (S10);
- protobuf must run on its upb (C) backend, whose parser bounds recursion and is fast;
  the pure-Python one is neither (S11).
"""

from __future__ import annotations

import ipaddress
import logging
import stat
from pathlib import Path

from strata.agent.config import Settings
from strata.agent.errors import ConfigError

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback bind without a token (unless explicitly allowed)."""
    if is_loopback(settings.host) or settings.api_token:
        return
    if settings.insecure_allow_unauthenticated:
        logger.warning("serving on %s without authentication", settings.host)
        return
    msg = (
        f"refusing to bind {settings.host} without an API token: set STRATA_API_TOKEN "
        "(or [agent] api_token), or insecure_allow_unauthenticated = true"
    )
    raise ConfigError(msg)


def check_data_dir(settings: Settings) -> None:
    """Refuse a database directory that other users can write to."""
    folder = Path(settings.db).resolve().parent
    if not folder.exists():
        return  # the store creates it with mode 0700
    mode = folder.stat().st_mode
    if mode & stat.S_IWOTH:
        msg = (f"refusing to use {folder} for the database: it is writable by every user "
               f"(mode {stat.S_IMODE(mode):o}); use a private directory (mode 0700)")
        raise ConfigError(msg)


def check_protobuf_backend() -> None:
    from google.protobuf.internal import api_implementation

    backend = api_implementation.Type()
    if backend != "upb":
        msg = (f"protobuf runs on its {backend!r} backend; Strata needs 'upb' (unset "
               "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION and install protobuf's binary wheel)")
        raise ConfigError(msg)


def preflight(settings: Settings) -> None:
    """Every startup check; raises ConfigError naming the problem."""
    check_exposure(settings)
    check_data_dir(settings)
    check_protobuf_backend()
