"""The process model of ``opsbot serve``: checks before anything starts, the executor processes, uvicorn's HTTP workers.

Why check before uvicorn starts: with ``--workers N`` each worker builds its part in its own
process, and a missing secret or an old schema would show up as N crash loops with
tracebacks. Checked here, it is one sentence saying what to do. Never Bolt's dev server (see
docs/benchmarks.md).

By default (``OPSBOT_WORKERS=1``, ``OPSBOT_EXECUTORS=0``) everything runs in this one process:
uvicorn serves here and the core (post-ack pool, run engine, scheduler, housekeeping) lives
beside the event loop, as ``build_inline_bot`` wires it. A process per role costs its own copy
of the interpreter and the libraries (~90 MiB each, measured with benchmarks/footprint.py), and
a team's bot is rarely busy enough to need it.

Past the load docs/operations.md names, ``OPSBOT_EXECUTORS`` > 0 starts that many executor
processes (each a core; see ``bot.serve.executor``) and uvicorn's HTTP workers only verify,
parse, ack and hand jobs to them over private Unix sockets. If an executor dies, serve stops
(non-zero) so the orchestrator restarts the pod rather than ack work nobody does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.catalog.catalog import Catalog
    from bot.catalog.config import ApiClient
    from bot.messages import Notifier
    from bot.requests.groups import ExternalGroupResolver
    from bot.serve.wiring import OpsbotCore

logger = logging.getLogger(__name__)

HTTP_FACTORY = "bot.serve.asgi:create_app"
SOCKET_MODE_FACTORY = "bot.serve.asgi:create_socket_mode_app"
GRACEFUL_SHUTDOWN_SECONDS = 30
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # as in bot.metrics, which must not be imported before the directory is ready
EXECUTOR_SOCKET_ENV = "OPSBOT_EXECUTOR_SOCKET"


def serve(settings: Settings, *, socket_mode: bool, host: str, port: int, workers: int) -> None:
    """Check, start the executors, run uvicorn until it stops; exit non-zero if an executor died."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_private_metrics_directory(workers))
        prepare_metrics_directory(workers)
        catalog = refuse_unless_ready(settings, socket_mode=socket_mode)
        import uvicorn

        executors = [stack.enter_context(executor_process(index)) for index in range(settings.executors)]
        if executors:
            os.environ[EXECUTOR_SOCKET_ENV] = ",".join(executor.socket_path for executor in executors)  # read by each HTTP worker
        else:
            os.environ.pop(EXECUTOR_SOCKET_ENV, None)  # no executor: each HTTP process runs its own core (one process by default)
        with _signals_end_serving_cleanly():
            if workers == 1 and not executors:
                _run_uvicorn(uvicorn, settings, socket_mode, host, port, workers, app=_one_process_app(settings, catalog, socket_mode))
            else:
                _run_uvicorn(uvicorn, settings, socket_mode, host, port, workers)
    if any(executor.died for executor in executors):
        click.echo("error: the executor process stopped unexpectedly, so opsbot serve stopped too (see the log above).", err=True)
        sys.exit(1)


@contextlib.contextmanager
def _signals_end_serving_cleanly() -> Iterator[None]:
    """A SIGTERM or Ctrl-C that uvicorn already answered with a graceful shutdown ends serve with code 0.

    uvicorn serving in this very process (one worker) restores the previous handlers after its
    shutdown and raises the signal again; with Python's default for SIGTERM that would kill the
    process by the signal after a clean stop. Here both signals raise ``KeyboardInterrupt``, which
    ``uvicorn.run`` takes as the end of a server that had started (code 0); one that arrives
    before uvicorn took the signals over still stops the start.
    """
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupt(_number: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _one_process_app(settings: Settings, catalog: Catalog, socket_mode: bool) -> Any:
    """The app served in this very process, around the catalog checked before the start (loaded once, not twice)."""
    from bot.serve.asgi import build_server
    from bot.serve.wiring import build_core

    def core_with_checked_catalog(core_settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotCore:
        return build_core(core_settings, notifier=notifier, catalog=catalog, external_groups=groups)

    inline = settings.model_copy(update={"executor_socket": None})
    return build_server(inline, core_factory=core_with_checked_catalog, socket_mode=socket_mode)


def _run_uvicorn(uvicorn: Any, settings: Settings, socket_mode: bool, host: str, port: int, workers: int, app: Any = None) -> None:
    """uvicorn with ``app`` in this process, or (several workers) each worker building its own from the factory."""
    from bot.serve.connections import uvicorn_options

    uvicorn.run(
        app or (SOCKET_MODE_FACTORY if socket_mode else HTTP_FACTORY),
        factory=app is None,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        access_log=False,  # a log line per request costs throughput; /metrics counts requests instead
        log_config=None,  # keep opsbot's JSON logging (each worker configures it in create_app)
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **uvicorn_options(settings),  # uvloop, httptools with header/connection limits, keep-alive timeout
    )


@dataclass
class ExecutorHandle:
    """The executor child: where it listens, and whether it died on its own."""

    socket_path: str
    process: BaseProcess
    stopping: bool = False
    died: bool = False


@contextlib.contextmanager
def executor_process(index: int = 0) -> Iterator[ExecutorHandle]:
    """Start the executor (spawned, so it shares nothing with this process), stop it on the way out."""
    from bot.serve.executor import run_executor

    directory = tempfile.mkdtemp(prefix="opsbot-executor-")  # mode 0700: only this user can reach the socket
    handle = ExecutorHandle(socket_path=os.path.join(directory, "executor.sock"), process=None)  # type: ignore[arg-type]
    handle.process = multiprocessing.get_context("spawn").Process(
        target=run_executor, args=(handle.socket_path,), name=f"opsbot-executor-{index}"
    )
    handle.process.start()
    try:
        _wait_for_executor(handle)
        threading.Thread(target=_stop_serving_if_executor_dies, args=(handle,), name="opsbot-executor-watch", daemon=True).start()
        yield handle
    finally:
        handle.stopping = True
        if handle.process.is_alive():
            handle.process.terminate()  # SIGTERM: the executor lets running steps finish or be recovered
            handle.process.join(timeout=GRACEFUL_SHUTDOWN_SECONDS)
        if handle.process.is_alive():
            handle.process.kill()
            handle.process.join(timeout=5)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_executor(handle: ExecutorHandle, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.process.is_alive():
            raise click.ClickException(f"the executor process exited during startup (code {handle.process.exitcode}); see the log above")
        if os.path.exists(handle.socket_path):
            return
        time.sleep(0.05)
    raise click.ClickException(f"the executor process did not start listening within {timeout:.0f} s")


def _stop_serving_if_executor_dies(handle: ExecutorHandle) -> None:
    handle.process.join()
    if handle.stopping:
        return
    if handle.process.exitcode in _CLEAN_EXITS:
        # The executor was told to stop (Ctrl-C or a SIGTERM to the whole process group, as
        # `timeout` and many init systems send): a stop, not a crash.
        logger.info("the executor process stopped (exit code %s); stopping opsbot serve", handle.process.exitcode)
    else:
        handle.died = True
        logger.error("the executor process exited with code %s; stopping opsbot serve", handle.process.exitcode)
    os.kill(os.getpid(), signal.SIGTERM)


_CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)


def refuse_unless_ready(settings: Settings, *, socket_mode: bool) -> Catalog:
    """Exit (code 2) naming every problem, or the checked catalog."""
    from bot.catalog.catalog import catalog_of, check_files
    from bot.catalog.registry import build_registry
    from bot.requests.builtin_specs import BUILTIN_SPECS
    from bot.serve.readiness import missing_slack_settings

    registry = build_registry()
    checked = check_files(settings.config_path, settings.runbooks_dir, builtins=BUILTIN_SPECS, registry=registry)
    problems = missing_slack_settings(settings, socket_mode=socket_mode)
    problems += [f"config: {problem}" for problem in checked.problems]
    if checked.config is not None:
        problems += [f"config: {problem}" for problem in unreadable_keys(checked.config.api.clients)]
    problems += _schema_problems(settings)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("opsbot serve did not start.", err=True)
        sys.exit(2)
    return catalog_of(checked, registry, builtins=BUILTIN_SPECS)


def unreadable_keys(clients: Mapping[str, ApiClient]) -> list[str]:
    """API clients whose token or key file cannot be read: said before any worker starts, not as a crash of each."""
    from bot.api.credentials import ClientDirectory

    try:
        ClientDirectory(clients)
    except ValueError as error:
        return [str(error)]
    return []


def _schema_problems(settings: Settings) -> list[str]:
    from bot.errors import DatabaseUnreachable
    from bot.store.database import Database, unreachable_message
    from bot.store.migrate import current_revision, head_revision

    url = settings.database_url.get_secret_value()
    try:
        database = Database(url)
    except DatabaseUnreachable as error:
        return [error.user_message]
    try:
        current = current_revision(database)
    except Exception as error:  # noqa: BLE001 - reported as a sentence, not a traceback
        return [unreachable_message(error, url) or f"cannot reach the database ({type(error).__name__})"]
    finally:
        database.dispose()
    head = head_revision()
    if current != head:
        return [
            f"the database schema is at {current or 'nothing (empty database)'}, this opsbot needs {head}: run `opsbot db upgrade` first"
        ]
    return []


@contextlib.contextmanager
def _private_metrics_directory(workers: int) -> Iterator[None]:
    """With several workers and no ``PROMETHEUS_MULTIPROC_DIR``, a private one for this run (the workers inherit it).

    Without a shared directory each /metrics scrape would see only the worker that answers; the
    variable and the directory are gone again when serve returns.
    """
    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="opsbot-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def prepare_metrics_directory(workers: int) -> None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` and clear a previous run's files, as prometheus-client requires.

    Must run before anything imports ``bot.metrics``: creating a metric writes its file there.
    """
    directory = os.environ.get(MULTIPROC_ENV)  # prometheus-client's own variable, read at its import
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
