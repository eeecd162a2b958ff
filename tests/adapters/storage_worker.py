"""Other processes for the FileStorage tests: ``python storage_worker.py <command> ...``.

Commands:
  modes <dir> <umask>...   for each umask, open a store under a new nested directory and
                           print {umask: {relative path: mode}} as JSON
  counter <path> <n> [file|sqlite]
                           print "ready", wait for a line on stdin, then increment the
                           "counter" key n times with the storage's transact; print "done"
  hold-lock <lock path>    flock the file, print "locked", hold it until stdin closes
  fork-writers <path> <value size> <filestorage|sqlite|in-place>
                           a small fork server: for each "fork <seed>" line on stdin, fork a
                           child that rewrites the store in a loop (through FileStorage, or
                           naively in place as a negative control) and print its pid (the
                           child prints "w <seed>" as each write begins); for
                           each "reap <pid>" line, wait for that child and print "reaped"
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from appusers.adapters import FileStorage, SQLiteStorage

STORAGES = {"file": FileStorage, "sqlite": SQLiteStorage}


def value_for(generation: int, size: int) -> str:
    """A value whose every byte depends on its generation, so a torn one is detectable."""
    unit = f"{generation:012d}|"
    return f"{generation}:" + (unit * (size // len(unit) + 1))[:size]


def modes(base: Path, umasks: list[int]) -> None:
    report: dict[str, dict[str, str]] = {}
    for umask in umasks:
        root = base / f"umask-{umask:03o}"
        path = root / "nested" / "store" / "users.json"

        async def exercise(path: Path = path) -> None:
            storage = FileStorage(path)
            await storage.set("k", "v1")
            await storage.update({"k": "v2", "other": "x"})
            # A corrupt file written by someone else under this umask gets quarantined 0600.
            os.unlink(path)
            with open(path, "wb") as file:
                file.write(b"{not json")
            assert await FileStorage(path).items("") == {}
            await FileStorage(path).set("k", "v3")

        os.umask(umask)
        try:
            asyncio.run(exercise())
        finally:
            os.umask(0o022)
        found: dict[str, str] = {}
        for directory, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = Path(directory) / name
                found[str(full.relative_to(root))] = f"{stat.S_IMODE(os.stat(full).st_mode):03o}"
        report[f"{umask:03o}"] = found
    print(json.dumps(report))


def counter(path: Path, n: int, kind: str = "file") -> None:
    def increment(current: Mapping[str, str]) -> Mapping[str, str | None]:
        return {"counter": str(int(current.get("counter", "0")) + 1)}

    async def run() -> None:
        storage = STORAGES[kind](path, lock_timeout=30)
        await storage.open()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for _ in range(n):
            await storage.transact(increment)

    asyncio.run(run())
    print("done", flush=True)


def hold_lock(lock_path: Path) -> None:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    os.close(fd)


def fork_writers(path: Path, size: int, how: str) -> None:
    writer = {
        "filestorage": _rewrite_forever,
        "sqlite": _rewrite_sqlite_forever,
        "in-place": _rewrite_in_place_forever,
    }[how]
    # This process stays single-threaded (no event loop runs here), so forking is safe;
    # children start in a few milliseconds with everything already imported.
    for line in sys.stdin:
        command, arg = line.split()
        if command == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    asyncio.run(writer(path, int(arg), size))
                finally:
                    os._exit(1)
            os.write(sys.stdout.fileno(), f"{pid}\n".encode())
        elif command == "reap":
            os.waitpid(int(arg), 0)
            print("reaped", flush=True)


def _writing(seed: int) -> None:
    """Tell the parent a write begins now (``w <seed>``).

    The parent times its kill from these lines, not from the fork: on a loaded machine a child
    may not even be scheduled within a fixed window. One write(2) of a few bytes on a pipe is
    atomic, so these lines never interleave with the fork server's own lines.
    """
    os.write(sys.stdout.fileno(), f"w {seed}\n".encode())


async def _rewrite_forever(path: Path, seed: int, size: int) -> None:
    storage = FileStorage(path)
    generation = seed * 1_000_000
    while True:
        generation += 1
        value = value_for(generation, size)
        _writing(seed)
        await storage.update({"a": value, "b": value, "generation": str(generation)})


async def _rewrite_sqlite_forever(path: Path, seed: int, size: int) -> None:
    storage = SQLiteStorage(path)
    generation = seed * 1_000_000
    while True:
        generation += 1
        value = value_for(generation, size)
        _writing(seed)
        await storage.update({"a": value, "b": value, "generation": str(generation)})


async def _rewrite_in_place_forever(path: Path, seed: int, size: int) -> None:
    generation = seed * 1_000_000
    while True:
        generation += 1
        value = value_for(generation, size)
        items = {"a": value, "b": value, "generation": str(generation)}
        data = json.dumps({"format": "appusers-storage", "version": 1, "items": items}).encode()
        _writing(seed)
        with open(path, "wb") as file:
            file.write(data)


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "modes":
        modes(Path(args[0]), [int(u, 8) for u in args[1:]])
    elif command == "counter":
        counter(Path(args[0]), int(args[1]), *args[2:])
    elif command == "hold-lock":
        hold_lock(Path(args[0]))
    elif command == "fork-writers":
        fork_writers(Path(args[0]), int(args[1]), args[2])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
