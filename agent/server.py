"""serve(settings): bind the OTLP and API ports and run the agent under uvicorn.

One uvicorn server serves the app on both sockets; GuardMiddleware keeps each port to its
own paths. uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests
finish (their commits included), then the lifespan closes the agent (final checkpoint).

A ``StoreWatchdog`` probes the store twice a second. When DuckDB has invalidated the database
(a fatal I/O error such as a checkpoint on a full disk) the writer already answers 503; the
watchdog then stops the server and ``serve`` raises, so the process exits non-zero and its
supervisor restarts it: only a fresh open of the file (WAL replay) recovers DuckDB.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from strata.agent.api.app import create_app, create_hub_app
from strata.agent.config import Settings
from strata.agent.errors import ConfigError, StoreError
from strata.agent.http_protocol import header_timeout_protocol
from strata.agent.hub import Hub
from strata.agent.ingest.grpc_receiver import GrpcReceiver
from strata.agent.ingest.writer import is_fatal_store_error
from strata.agent.preflight import check_exposure, is_loopback, preflight
from strata.agent.runner import Agent
from strata.agent.store.incidents import insert_incident
from strata.agent.store.recovery import open_with_recovery, recovery_incident

logger = logging.getLogger(__name__)

# The GIL's turn in the agent process (not the hub's: not measured there). A DuckDB or
# pyarrow call releases the GIL and takes it back several times, about sixteen for one group
# commit; while another thread runs Python, each take waits out that thread's turn. At
# CPython's 5 ms, a commit that takes 9 ms alone took 103 ms beside one busy thread; at
# 0.5 ms, 22 ms (benchmarks/commit_beside_python.py). Chosen on tuning runs, checked on
# others: docs/benchmarks.md, "Issue 18: the GIL's turn".
GIL_SWITCH_INTERVAL_S = 0.0005

__all__ = ["RunningServer", "StoreWatchdog", "bind", "check_exposure", "is_loopback",
           "open_agent", "serve", "serve_hub", "start_in_thread"]


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


class StoreWatchdog:
    """Detects an invalidated store within *interval_s* and asks the server to exit.

    Args:
        agent: whose store and writer to watch.
        server: told to exit (``should_exit``) once the store has failed.
        interval_s: how often the store is probed with ``SELECT 1``.
    """

    def __init__(self, agent: Agent, server: uvicorn.Server, *, interval_s: float = 0.5) -> None:
        self._agent = agent
        self._server = server
        self._interval_s = interval_s
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strata-store-watchdog",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def check_once(self) -> str | None:
        """Probe the store; returns the fatal reason once the store has failed."""
        writer = self._agent.writer
        if writer.fatal_error is None:
            try:
                self._agent.store.ping()
            except Exception as exc:  # noqa: BLE001 - only a fatal error matters here
                if is_fatal_store_error(exc):
                    writer.mark_fatal(str(exc).splitlines()[0][:300])
        return writer.fatal_error

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if self._server.should_exit:
                return  # shutting down anyway; the store may already be closed
            reason = self.check_once()
            if reason is not None:
                self.failure = reason
                logger.error("store invalidated (%s); stopping so the supervisor restarts "
                             "the agent", reason)
                self._server.should_exit = True
                return


def open_agent(settings: Settings) -> Agent:
    """The agent, its store repaired first if a corrupt WAL or file kept it from opening;
    each repair is stored as a ``store_recovered`` incident."""
    agent, recoveries = open_with_recovery(Path(settings.db), lambda: Agent(settings))
    if recoveries:
        with agent.store.transaction() as cur:
            for recovery in recoveries:
                insert_incident(cur, recovery_incident(recovery, socket.gethostname()),
                                recovery.time_ns)
    return agent


async def _serve_all(
    server: uvicorn.Server, sockets: list[socket.socket], grpc_receiver: GrpcReceiver,
    on_bound: Callable[[], None] | None = None,
) -> None:
    """uvicorn and the gRPC receiver on one event loop, so the receivers' shared counters
    and in-flight bound are touched by one thread. The gRPC server binds first (a port in
    use fails before anything starts); the app's lifespan drains it before closing the
    agent."""
    settings = grpc_receiver.agent.settings
    if settings.otlp_grpc_port:
        await grpc_receiver.start(settings.host, settings.otlp_grpc_port)
    if on_bound is not None:
        on_bound()
    try:
        await server.serve(sockets=sockets)
    finally:
        await grpc_receiver.stop()


def _log_ready(agent: Agent) -> None:
    settings = agent.settings
    grpc = f"  OTLP/gRPC {settings.host}:{agent.grpc_port}" if agent.grpc_port else ""
    logger.warning(
        "strata agent ready: OTLP http://%s:%d%s  API http://%s:%d  db %s",
        settings.host, *agent.otlp_ports, grpc, settings.host, *agent.api_ports, settings.db,
    )


def serve(settings: Settings, *, on_ready: object = None) -> None:
    """Run the agent until SIGTERM/SIGINT. Prints the bound ports once ready."""
    preflight(settings)
    os.umask(0o077)  # the WAL, quarantine and queue files hold the same data as the DB
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    otlp_sock = bind(settings.host, settings.otlp_port)
    api_sock = bind(settings.host, settings.api_port)
    agent = open_agent(settings)
    agent.otlp_ports.add(otlp_sock.getsockname()[1])
    agent.api_ports.add(api_sock.getsockname()[1])
    grpc_receiver = GrpcReceiver(agent)
    app = create_app(agent, before_close=grpc_receiver.stop)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_keep_alive=30,
        timeout_graceful_shutdown=10, lifespan="on", server_header=False,
        http=header_timeout_protocol(settings.read_header_timeout_s),
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it handled once it has shut down; with these no-op
    # handlers in place that re-raise is harmless and a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    watchdog = StoreWatchdog(agent, server)
    watchdog.start()
    try:
        asyncio.run(_serve_all(server, [otlp_sock, api_sock], grpc_receiver,
                               on_bound=lambda: _log_ready(agent)))
    except ConfigError:
        agent.close()  # the gRPC port could not be bound: the agent never started
        raise
    finally:
        watchdog.stop()
    if watchdog.failure is not None:
        msg = (f"the store failed ({watchdog.failure}); exiting so the supervisor restarts "
               "the agent, which reopens the database and replays its WAL")
        raise StoreError(msg)
    logger.warning("strata agent stopped")


class RunningServer:
    """An agent served from a background thread (the demo, examples, in-process tests)."""

    def __init__(self, agent: Agent, server: uvicorn.Server, thread: threading.Thread,
                 host: str) -> None:
        self.agent = agent
        self._server = server
        self._thread = thread
        self.otlp_url = f"http://{host}:{min(agent.otlp_ports)}"
        self.otlp_grpc_target = f"{host}:{agent.grpc_port}" if agent.grpc_port else None
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
    grpc_receiver = GrpcReceiver(agent)
    config = uvicorn.Config(create_app(agent, before_close=grpc_receiver.stop),
                            log_level="warning", access_log=False, lifespan="on",
                            server_header=False)
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_serve_all(server, [otlp_sock, api_sock], grpc_receiver))
        except BaseException as exc:
            failure.append(exc)
            raise

    thread = threading.Thread(target=run, name="strata-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            if failure and isinstance(failure[0], ConfigError):
                agent.close()
                raise failure[0]
            msg = "the agent's server did not start"
            raise StoreError(msg)
        time.sleep(0.01)
    return RunningServer(agent, server, thread, settings.host)


def serve_hub(settings: Settings, clickhouse: str, database: str) -> None:
    """Run ``strata hub`` (``strata.agent.hub``) until SIGTERM/SIGINT on the agent's ports
    (OTLP/HTTP, OTLP/gRPC when ``otlp_grpc_port`` is set, and the API)."""
    check_exposure(settings)
    os.umask(0o077)
    otlp_sock = bind(settings.host, settings.otlp_port)
    api_sock = bind(settings.host, settings.api_port)
    hub = Hub(settings, clickhouse, database)
    hub.otlp_ports.add(otlp_sock.getsockname()[1])
    hub.api_ports.add(api_sock.getsockname()[1])
    grpc_receiver = GrpcReceiver(hub)
    server = uvicorn.Server(uvicorn.Config(
        create_hub_app(hub, before_close=grpc_receiver.stop), log_level="warning",
        access_log=False, timeout_keep_alive=30, timeout_graceful_shutdown=10, lifespan="on",
        server_header=False, http=header_timeout_protocol(settings.read_header_timeout_s)))

    def log_ready() -> None:
        grpc = f"  OTLP/gRPC {settings.host}:{hub.grpc_port}" if hub.grpc_port else ""
        logger.warning("strata hub ready: OTLP http://%s:%d%s  API http://%s:%d  ClickHouse "
                       "%s/%s", settings.host, *hub.otlp_ports, grpc, settings.host,
                       *hub.api_ports, clickhouse.split("@")[-1], database)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        asyncio.run(_serve_all(server, [otlp_sock, api_sock], grpc_receiver, on_bound=log_ready))
    except ConfigError:
        hub.close()  # the gRPC port could not be bound: the hub never started
        raise
    logger.warning("strata hub stopped")
