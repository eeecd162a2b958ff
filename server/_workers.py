"""``appusers serve --workers N``: a supervisor and N server processes on one port and one data directory.

Why processes: one Python process serves on one core (the GIL); N processes use N. Each
worker is an ordinary ``LocalServer`` started with ``worker=i`` (see its docstring) and binds
the port with ``SO_REUSEPORT``, so the kernel spreads new connections over the workers (by a
hash of the client's address and port; a connection stays with the worker that accepted it).

What the supervisor does, and why:

* It takes the data directory's lock (``documents/LOCK``) for the whole group and hands the
  descriptor to every worker, so a second ``appusers serve`` on that directory is still
  refused while the workers share it legitimately.
* It checks the port the way a single server would (in use: refused) and holds it, bound but
  not listening, with ``SO_REUSEPORT``: port 0 becomes one free port all workers share, and
  no other group can take it while the workers restart.
* It brings the users database schema up to date once, before the workers open it together.
* Workers report ready through a pipe; one that exits before every worker is ready fails the
  whole start, loudly, with its own error on stderr and its exit code.
* A worker that dies later is restarted (its connections are lost; the data is on disk). More
  than :data:`MAX_RESTARTS` restarts within :data:`RESTART_WINDOW` seconds stop the server
  with exit code 1: a worker that crashes at once again would otherwise spin.
* SIGTERM or SIGINT stops every worker (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`) and
  exits. Each worker also watches a pipe whose write end only the supervisor holds: if the
  supervisor dies without cleaning up (SIGKILL), the pipe reads EOF and the workers stop, so
  no orphan keeps serving or keeps the directory locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import attrs

from ._errors import ConfigError

__all__ = ["MAX_WORKERS", "WorkerLink", "supervise"]

#: Upper bound of ``--workers`` (a typo like 100 should not fork a hundred servers).
MAX_WORKERS = 64
#: Seconds a worker may take to start before the whole start fails.
START_TIMEOUT = 120.0
#: Seconds workers get to finish after SIGTERM before they are killed.
STOP_TIMEOUT = 15.0
#: Restarts allowed within :data:`RESTART_WINDOW` seconds before the server gives up.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


@attrs.frozen
class WorkerLink:
    """What a worker inherits from its supervisor (``--worker index:lock:ready:alive``, descriptors)."""

    index: int
    lock_fd: int
    ready_fd: int
    alive_fd: int

    def __str__(self) -> str:
        return f"{self.index}:{self.lock_fd}:{self.ready_fd}:{self.alive_fd}"

    @classmethod
    def parse(cls, text: str) -> WorkerLink:
        try:
            index, lock_fd, ready_fd, alive_fd = (int(part) for part in text.split(":"))
        except ValueError:
            raise ConfigError(
                "--worker is set by `appusers serve --workers N` for its own processes"
            ) from None
        return cls(index, lock_fd, ready_fd, alive_fd)

    def check_lock(self) -> None:
        """Fail unless the inherited descriptor holds the data directory's lock (a supervisor's)."""
        import fcntl

        try:
            # The same open file description as the supervisor's: re-locking it succeeds at once.
            # Any other holder makes this fail, so a stray --worker cannot share a directory.
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ConfigError(
                f"worker {self.index}: no data directory lock from a supervisor ({exc.strerror});"
                " --worker is set by `appusers serve --workers N` for its own processes"
            ) from None

    def ready(self, banner: dict[str, str]) -> None:
        """Tell the supervisor this worker serves (with what it would print)."""
        with os.fdopen(self.ready_fd, "w", encoding="utf-8") as pipe:
            pipe.write(json.dumps(banner) + "\n")


class _Worker:
    def __init__(self, index: int, argv: Sequence[str], fds: tuple[int, int]):
        self.index = index
        self._argv = argv
        self._lock_fd, self._alive_fd = fds
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: IO[str] | None = None

    def spawn(self) -> None:
        ready_r, ready_w = os.pipe()
        link = WorkerLink(self.index, self._lock_fd, ready_w, self._alive_fd)
        try:
            # Our own interpreter and module, with the options this command was given.
            self.proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "appusers.server", *self._argv, "--worker", str(link)],
                pass_fds=(self._lock_fd, ready_w, self._alive_fd),
            )
        finally:
            os.close(ready_w)  # the worker holds the only write end: EOF when it exits
        self.ready = os.fdopen(ready_r, "r", encoding="utf-8")

    def close_ready(self) -> None:
        if self.ready is not None:
            self.ready.close()
            self.ready = None


def _reserve_port(host: str, port: int) -> socket.socket:
    """Check ``host:port`` is free and hold it for the group (bound, not listening, SO_REUSEPORT)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    # First without SO_REUSEPORT: this fails if anything holds the port, another group included.
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = (address[0], probe.getsockname()[1], *address[2:])
    held = socket.socket(family, kind, proto)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(address)
    except BaseException:
        held.close()
        raise
    return held


def _lock_data_dir(data_dir: Path) -> int:
    import fcntl

    fd = os.open(data_dir / "documents" / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def supervise(argv: Sequence[str], *, workers: int, host: str, port: int, data_dir: Path) -> int:
    """Run ``workers`` server processes (``argv``: the worker's serve options) until a signal; exit code."""
    if not hasattr(socket, "SO_REUSEPORT"):
        print("error: --workers needs SO_REUSEPORT, which this platform lacks", file=sys.stderr)
        return 2
    try:
        lock_fd = _lock_data_dir(data_dir)
    except OSError:
        print(
            f"error: cannot start server: data directory {data_dir} is in use by another server;"
            " stop it or pass another --data",
            file=sys.stderr,
        )
        return 1
    try:
        held = _reserve_port(host, port)
    except OSError as exc:
        os.close(lock_fd)
        from ._cli import describe_os_error

        print(f"error: cannot start server: {describe_os_error(exc, host, port)}", file=sys.stderr)
        return 1
    alive_r, alive_w = os.pipe()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    group = [
        _Worker(i, [*argv, "--port", str(held.getsockname()[1])], (lock_fd, alive_r)) for i in range(workers)
    ]
    try:
        return _run(group, stop)
    finally:
        _stop_all(group)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(alive_w)
        os.close(alive_r)
        held.close()
        os.close(lock_fd)


def _run(group: list[_Worker], stop: threading.Event) -> int:
    for worker in group:
        worker.spawn()
    banner = _wait_ready(group, stop)
    if banner is None:
        return 0 if stop.is_set() else 1
    print(
        f"appusers server: {banner['url']}  app id: {banner['app_id']}  data: {banner['data']}"
        f"  workers: {len(group)} (pids {' '.join(str(w.proc.pid) for w in group if w.proc)})",
        flush=True,
    )
    for line in banner.get("extra", "").splitlines():
        print(line, flush=True)
    restarts: list[float] = []
    while not stop.wait(0.2):
        for worker in group:
            assert worker.proc is not None
            code = worker.proc.poll()
            if code is None:
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            if len(restarts) > MAX_RESTARTS:
                print(
                    f"error: worker {worker.index} exited with code {code}; {len(restarts) - 1} restarts in"
                    f" the last {RESTART_WINDOW:.0f} s: stopping the server",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            print(
                f"warning: worker {worker.index} (pid {worker.proc.pid}) exited with code {code};"
                " restarting it (its open connections were dropped)",
                file=sys.stderr,
                flush=True,
            )
            worker.close_ready()
            worker.spawn()
    print("stopping", flush=True)
    return 0


def _wait_ready(group: list[_Worker], stop: threading.Event) -> dict[str, str] | None:
    """Worker 0's banner once every worker serves; None if one failed (reported) or a signal came."""
    waiting = {w.index: w for w in group if w.ready is not None}
    banner: dict[str, str] | None = None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as sel:
        for index, waiter in waiting.items():
            assert waiter.ready is not None
            sel.register(waiter.ready, selectors.EVENT_READ, index)
        while waiting and not stop.is_set():
            if time.monotonic() > deadline:
                print(f"error: workers not ready within {START_TIMEOUT:.0f} s", file=sys.stderr, flush=True)
                return None
            for key, _ in sel.select(timeout=0.2):
                worker = waiting.pop(key.data)
                sel.unregister(key.fileobj)
                line = worker.ready.readline() if worker.ready is not None else ""
                worker.close_ready()
                if not line:  # EOF without a word: the worker exited while starting
                    assert worker.proc is not None
                    code = worker.proc.wait()
                    print(
                        f"error: worker {worker.index} failed to start (exit code {code});"
                        " stopping the server",
                        file=sys.stderr,
                        flush=True,
                    )
                    return None
                if worker.index == 0:
                    banner = json.loads(line)
    return banner if not stop.is_set() else None


def _stop_all(group: list[_Worker]) -> None:
    live = [w.proc for w in group if w.proc is not None and w.proc.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for worker in group:
        worker.close_ready()
