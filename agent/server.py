"""serve(settings): bind the OTLP and API ports and run the agent under uvicorn.

One uvicorn server serves the app on both sockets; GuardMiddleware keeps each port to its
own paths. uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests
finish (their commits included), then the lifespan closes the agent (final checkpoint).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time

import uvicorn

from agent.api.app import create_app
from agent.config import Settings
from agent.errors import ConfigError, StoreError
from agent.runner import Agent

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


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        msg = f"cannot bind {host}:{port}: {exc.strerror}"
        raise ConfigError(msg) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, *, on_ready: object = None) -> None:
    """Run the agent until SIGTERM/SIGINT. Prints the bound ports once ready."""
    check_exposure(settings)
    otlp_sock = bind(settings.host, settings.otlp_port)
    api_sock = bind(settings.host, settings.api_port)
    agent = Agent(settings)
    agent.otlp_ports.add(otlp_sock.getsockname()[1])
    agent.api_ports.add(api_sock.getsockname()[1])
    app = create_app(agent)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_keep_alive=30,
        timeout_graceful_shutdown=10, lifespan="on", server_header=False,
    )
    server = uvicorn.Server(config)
    logger.warning(
        "strata agent ready: OTLP http://%s:%d  API http://%s:%d  db %s",
        settings.host, *agent.otlp_ports, settings.host, *agent.api_ports, settings.db,
    )
    # uvicorn re-raises the signal it handled once it has shut down; with these no-op
    # handlers in place that re-raise is harmless and a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[otlp_sock, api_sock])
    logger.warning("strata agent stopped")


class RunningServer:
    """An agent served from a background thread (the demo, examples, in-process tests)."""

    def __init__(self, agent: Agent, server: uvicorn.Server, thread: threading.Thread,
                 host: str) -> None:
        self.agent = agent
        self._server = server
        self._thread = thread
        self.otlp_url = f"http://{host}:{min(agent.otlp_ports)}"
        self.api_url = f"http://{host}:{min(agent.api_ports)}"

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


def start_in_thread(settings: Settings, *, ready_timeout_s: float = 30.0) -> RunningServer:
    """Start an agent and its server in a daemon thread; returns once it accepts requests."""
    check_exposure(settings)
    otlp_sock = bind(settings.host, settings.otlp_port)
    api_sock = bind(settings.host, settings.api_port)
    agent = Agent(settings)
    agent.otlp_ports.add(otlp_sock.getsockname()[1])
    agent.api_ports.add(api_sock.getsockname()[1])
    config = uvicorn.Config(create_app(agent), log_level="warning", access_log=False,
                            lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [otlp_sock, api_sock]},
                              name="strata-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = "the agent's server did not start"
            raise StoreError(msg)
        time.sleep(0.01)
    return RunningServer(agent, server, thread, settings.host)
