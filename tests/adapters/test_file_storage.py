"""FileStorage: the storage contract, then crashes, corruption, modes and other processes (R9, R10, S2)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from appusers.adapters import FileStorage
from appusers.adapters import _file as file_module
from appusers.adapters.storage_contract import CANARY, StorageContract
from appusers.errors import InsecureStorageError, StorageError, StorageLockTimeoutError
from appusers.storage import Storage, StorageIssue

WORKER = Path(__file__).with_name("storage_worker.py")
sys.path.insert(0, str(WORKER.parent))
from storage_worker import value_for  # noqa: E402


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def kinds(issues: list[StorageIssue]) -> list[str]:
    return [issue.kind for issue in issues]


def document(items: object, **fields: object) -> bytes:
    return json.dumps({"format": "appusers-storage", "version": 1, "items": items, **fields}).encode()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "users.json"


def write_store_bytes(path: Path, data: bytes) -> None:
    """What another (broken) program would leave behind."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.fixture
def worker() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts storage_worker.py processes and makes sure none outlives the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):  # a killed child leaves a broken pipe
                pipe.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


class TestFileStorageContract(StorageContract):
    @pytest.fixture
    def open_storage(self, store_path: Path) -> Callable[[], Storage]:
        return lambda: FileStorage(store_path)


# -- format and basics ------------------------------------------------------------------


async def test_file_format_2_is_a_checked_header_then_key_and_value_lines(store_path: Path) -> None:
    await FileStorage(store_path).update({"b": "2", "a": "1", "tab\tkey": "x", "nl": "two\nlines"})
    data = await asyncio.to_thread(store_path.read_bytes)
    head, _, rest = data.partition(b"\n")
    assert head == b"appusers-storage 2 3 %08x" % zlib.crc32(rest)
    assert rest == b'{"nl":"two\\nlines"}\nb\n2\na\n1\ntab\tkey\nx\n'


async def test_a_format_1_store_is_read_and_migrated_on_the_next_write(store_path: Path) -> None:
    old = {"app(a):user(1):refreshToken": CANARY, "multi": "line\none", "tab": "a\tb"}
    write_store_bytes(store_path, document(old))
    storage = FileStorage(store_path)
    assert await storage.items("") == old
    assert storage.drain_issues() == []
    await storage.set("new", "v")
    assert (await asyncio.to_thread(store_path.read_bytes)).startswith(b"appusers-storage 2 3 ")
    assert await FileStorage(store_path).items("") == {**old, "new": "v"}


async def test_keys_keep_insertion_order(store_path: Path) -> None:
    storage = FileStorage(store_path)
    await storage.update({"c": "1", "a": "2", "b": "3"})
    await storage.set("a", "changed")
    assert list((await FileStorage(store_path).items("")).keys()) == ["c", "a", "b"]


def test_repr_shows_the_path_only(store_path: Path) -> None:
    assert repr(FileStorage(store_path)) == f"FileStorage({str(store_path)!r})"


def test_constructor_touches_nothing(store_path: Path) -> None:
    FileStorage(store_path)
    assert not store_path.parent.exists()


async def test_lone_surrogates_survive(store_path: Path) -> None:
    await FileStorage(store_path).set("k", "half a pair: \ud800!")
    assert await FileStorage(store_path).get("k") == "half a pair: \ud800!"


async def test_reads_come_from_the_cache_until_the_file_changes(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_read_all = file_module._read_all

    def counting_read_all(fd: int) -> bytes:
        nonlocal reads
        reads += 1
        return real_read_all(fd)

    await FileStorage(store_path).update({"a": "1", "b": "2"})
    monkeypatch.setattr(file_module, "_read_all", counting_read_all)
    storage = FileStorage(store_path)
    for _ in range(5):
        assert await storage.get("a") == "1"
        assert await storage.items("") == {"a": "1", "b": "2"}
    await storage.set("c", "3")  # our own write refreshes the cache without a read
    assert await storage.get("c") == "3"
    assert reads == 1
    await FileStorage(store_path).set("a", "changed elsewhere")
    assert await storage.get("a") == "changed elsewhere"
    assert reads == 3  # the other instance read once to write, then we re-read once


async def test_transact_serialises_instances_in_one_process(store_path: Path) -> None:
    first, second = FileStorage(store_path), FileStorage(store_path)

    def increment(current: Mapping[str, str]) -> Mapping[str, str | None]:
        return {"n": str(int(current.get("n", "0")) + 1)}

    await asyncio.gather(*(s.transact(increment) for s in [first, second] * 50))
    assert await FileStorage(store_path).get("n") == "100"


async def test_cancelled_writes_leave_a_whole_store(store_path: Path) -> None:
    storage = FileStorage(store_path)
    await storage.set("k", "v0")
    for i in range(1, 20):
        task = asyncio.create_task(storage.update({"k": f"v{i}", "twin": f"v{i}"}))
        for _ in range(i % 4):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await storage.set("after", str(i))  # the storage still works after a cancellation
    fresh = FileStorage(store_path)
    found = await fresh.items("")
    assert found["after"] == "19"
    assert found.get("twin", found["k"]) == found["k"]  # both keys from the same update, or neither
    assert fresh.drain_issues() == []


# -- permissions (S2) ---------------------------------------------------------------------


def test_modes_are_private_under_any_umask(tmp_path: Path) -> None:
    # umask is per process: run in a child so this test process keeps its own.
    done = subprocess.run(
        [sys.executable, str(WORKER), "modes", str(tmp_path), "000", "022", "077", "777"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert set(report) == {"000", "022", "077", "777"}
    for umask, modes in report.items():
        dirs = {p: m for p, m in modes.items() if not p.endswith(("json", "lock")) and ".corrupt-" not in p}
        files = {p: m for p, m in modes.items() if p not in dirs}
        assert set(dirs) == {"nested", "nested/store"}, umask
        assert {m for m in dirs.values()} == {"700"}, (umask, dirs)
        assert len(files) == 3, (umask, files)  # store, lock, quarantined copy; no temp files
        assert {m for m in files.values()} == {"600"}, (umask, files)


async def test_widened_files_are_repaired_and_reported_but_the_directory_is_left_alone(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await FileStorage(store_path).set("app(a):user(1):accessToken", CANARY)
    os.chmod(store_path, 0o644)
    os.chmod(store_path.parent, 0o755)  # others may read it, only we write: fine, and not ours to change
    os.chmod(store_path.with_name("users.json.lock"), 0o666)
    caplog.set_level(logging.DEBUG)

    storage = FileStorage(store_path)
    await storage.open()

    assert mode_of(store_path) == 0o600
    assert mode_of(store_path.parent) == 0o755
    assert mode_of(storage.lock_path) == 0o600
    issues = storage.drain_issues()
    assert kinds(issues) == ["permissions-repaired"] * 2
    assert {issue.path for issue in issues} == {str(store_path), str(storage.lock_path)}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert CANARY not in caplog.text
    assert await storage.get("app(a):user(1):accessToken") == CANARY
    assert storage.drain_issues() == []


async def test_the_working_directory_keeps_its_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "project"
    work.mkdir()
    os.chmod(work, 0o755)
    monkeypatch.chdir(work)
    storage = FileStorage(Path("session.json"))  # a relative path, as a script might pass
    await storage.set("k", "v")
    assert mode_of(work) == 0o755
    assert mode_of(work / "session.json") == 0o600
    assert mode_of(work / "session.json.lock") == 0o600
    assert await FileStorage(work / "session.json").get("k") == "v"


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777, 0o1770], ids=oct)
async def test_a_directory_others_can_write_to_is_refused_and_left_alone(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    storage = FileStorage(shared / "users.json")
    with pytest.raises(InsecureStorageError) as caught:
        await storage.set("k", CANARY)
    assert isinstance(caught.value, StorageError)
    assert "writable by other users" in str(caught.value) and str(shared) in str(caught.value)
    assert CANARY not in str(caught.value) and CANARY not in caplog.text
    assert mode_of(shared) == mode  # never narrowed: not ours (think of /tmp or a team folder)
    assert list(shared.iterdir()) == []  # nothing written there, not even the lock file
    with pytest.raises(InsecureStorageError):
        await storage.items("")


async def test_a_read_only_directory_is_read_and_keeps_its_mode(store_path: Path) -> None:
    await FileStorage(store_path).set("k", "v")
    os.unlink(store_path.with_name("users.json.lock"))
    os.chmod(store_path.parent, 0o555)
    try:
        storage = FileStorage(store_path)
        assert await storage.get("k") == "v"  # e.g. `appusers whoami` on a read-only data dir
        assert mode_of(store_path.parent) == 0o555
        if os.geteuid() != 0:  # root writes anywhere; everyone else gets a typed error
            with pytest.raises(StorageError):
                await storage.set("k", "w")
            assert await FileStorage(store_path).get("k") == "v"
        assert mode_of(store_path.parent) == 0o555
    finally:
        os.chmod(store_path.parent, 0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
async def test_a_store_owned_by_another_user_is_refused(store_path: Path) -> None:
    await FileStorage(store_path).set("k", "v")
    os.chown(store_path, 65534, 65534)
    with pytest.raises(InsecureStorageError) as caught:
        await FileStorage(store_path).get("k")
    assert "belongs to another user" in str(caught.value)


# -- corruption (R9) ----------------------------------------------------------------------

def v2_file(body: bytes, *, count: int) -> bytes:
    """A format-2 file with a correct checksum, so only the body's own flaw is tested."""
    return b"appusers-storage 2 %d %08x\n%s" % (count, zlib.crc32(body), body)


VALID_2 = v2_file(("{}\napp(a):user(1):refreshToken\n" + CANARY * 20 + "\n").encode(), count=1)
VALID = document({"app(a):user(1):refreshToken": CANARY * 20, "app(a):userIds": '["1"]'})
CORRUPT = {
    "empty": b"",
    "truncated": VALID[: len(VALID) // 2],
    "truncated-by-one": VALID[:-1],
    "random-bytes": random.Random(9).randbytes(4096),
    "not-utf8": b'{"format": "appusers-storage\xff\xfe"}',
    "not-json": b"hello, world",
    "nul-bytes": b"\0" * 512,
    "null": b"null",
    "top-level-list": b'["appusers-storage", 1]',
    "wrong-format": document({}, format="realm-web"),
    "no-format": json.dumps({"version": 1, "items": {}}).encode(),
    "newer-version": document({}, version=2),
    "v2-newer-version": b"appusers-storage 3 0 00000000\n{}\n",
    "v2-no-newline": b"appusers-storage 2 0 00000000",
    "v2-bad-header": b"appusers-storage 2 x y\n{}\n",
    "v2-header-too-long": b"appusers-storage 2 0 " + b"0" * 200 + b"\n{}\n",
    "v2-bad-checksum": b"appusers-storage 2 1 00000000\n{}\na\n1\n",
    "v2-truncated": VALID_2[: len(VALID_2) // 2],
    "v2-truncated-by-one": VALID_2[:-1],
    "v2-count-too-high": v2_file(b"{}\na\n1\n", count=2),
    "v2-count-too-low": v2_file(b"{}\na\n1\nb\n2\n", count=1),
    "v2-odd-lines": v2_file(b"{}\na\n1\nb\n", count=1),
    "v2-duplicate-key": v2_file(b"{}\na\n1\na\n2\n", count=2),
    "v2-duplicate-quoted-key": v2_file(b'{"a":"x"}\na\n1\n', count=1),
    "v2-unterminated": v2_file(b"{}\na\n1", count=1),
    "v2-no-quoted-line": v2_file(b"", count=0),
    "v2-quoted-not-an-object": v2_file(b"[]\n", count=0),
    "v2-quoted-value-not-a-string": v2_file(b'{"a":1}\n', count=0),
    "v2-quoted-bad-json": v2_file(b'{"a":\n', count=0),
    "v2-not-utf8": v2_file(b"{}\na\n\xff\xfe\n", count=1),
    "v2-quoted-deeply-nested": v2_file(b"[" * 100_000 + b"\n", count=0),
    "version-as-string": document({}, version="1"),
    "version-true": document({}, version=True),
    "items-not-object": document(["a", "b"]),
    "value-not-string": document({"app(a):user(1):state": 1}),
    "value-null": document({"app(a):user(1):state": None}),
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("data", CORRUPT.values(), ids=CORRUPT.keys())
async def test_a_corrupt_store_is_quarantined_and_the_storage_starts_empty(
    store_path: Path, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    write_store_bytes(store_path, data)
    caplog.set_level(logging.DEBUG)
    storage = FileStorage(store_path)

    assert await storage.items("") == {}  # opening never raises for corruption

    [issue] = storage.drain_issues()
    assert issue.kind == "quarantined"
    quarantined = Path(issue.path)
    assert quarantined.parent == store_path.parent
    assert quarantined.name.startswith("users.json.corrupt-")
    assert await asyncio.to_thread(quarantined.read_bytes) == data  # kept for forensics, byte for byte
    assert mode_of(quarantined) == 0o600
    assert not await asyncio.to_thread(store_path.exists)
    assert CANARY not in issue.detail
    assert CANARY not in caplog.text

    await storage.set("app(a):user(2):refreshToken", "fresh")
    again = FileStorage(store_path)
    assert await again.items("") == {"app(a):user(2):refreshToken": "fresh"}
    assert again.drain_issues() == []
    assert storage.drain_issues() == []


async def test_corruption_after_open_is_quarantined_on_the_next_read(store_path: Path) -> None:
    storage = FileStorage(store_path)
    await storage.set("a", "1")
    junk = store_path.with_name("junk")
    junk.write_bytes(b'{"format": "appusers-stor')
    os.replace(junk, store_path)  # as another process would, so the file really changed

    assert await storage.get("a") is None
    assert kinds(storage.drain_issues()) == ["quarantined"]
    await storage.set("b", "2")
    assert await FileStorage(store_path).items("") == {"b": "2"}


async def test_a_write_after_outside_corruption_quarantines_first(store_path: Path) -> None:
    storage = FileStorage(store_path)
    await storage.set("a", "1")
    write_store_bytes(store_path, b"garbage")
    await storage.update({"b": "2"})
    assert kinds(storage.drain_issues()) == ["quarantined"]
    assert await FileStorage(store_path).items("") == {"b": "2"}


async def test_each_quarantine_gets_its_own_file(store_path: Path) -> None:
    paths = []
    for data in (b"first", b"second", b"third"):
        write_store_bytes(store_path, data)
        storage = FileStorage(store_path)
        await storage.open()
        [issue] = storage.drain_issues()
        paths.append(Path(issue.path))
    assert len(set(paths)) == 3
    assert [p.read_bytes() for p in paths] == [b"first", b"second", b"third"]


async def test_orphan_temp_files_are_removed_at_open(store_path: Path) -> None:
    await FileStorage(store_path).set("k", "v")
    orphans = [store_path.with_name(f".users.json.tmp-{n}") for n in ("0123abcd", "ffff0000")]
    for orphan in orphans:
        orphan.write_bytes(b'{"format": "appusers-storage", "vers')  # a half-written store
    unrelated = [store_path.with_name(n) for n in (".other.json.tmp-0123abcd", "users.json.bak", "notes")]
    for path in unrelated:
        path.write_bytes(b"keep me")

    storage = FileStorage(store_path)
    assert await storage.get("k") == "v"

    assert not any(orphan.exists() for orphan in orphans)
    assert all(path.exists() for path in unrelated)
    [issue] = storage.drain_issues()
    assert issue.kind == "orphan-removed"
    assert "2" in issue.detail


# -- other processes (R10) ----------------------------------------------------------------


def test_processes_sharing_a_store_lose_no_updates(
    store_path: Path,
    worker: Callable[..., subprocess.Popen[str]],
    record_property: Callable[[str, object], None],
) -> None:
    processes, increments = 4, 50
    procs = [worker("counter", store_path, increments) for _ in range(processes)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for proc in procs:  # release them together so they really contend
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert out.strip() == "done"
    elapsed = time.monotonic() - started

    final = asyncio.run(FileStorage(store_path).get("counter"))
    lost = processes * increments - int(final or "0")
    record_property("lost_updates", lost)
    print(
        f"\nR10: {processes} processes x {increments} increments -> "
        f"counter {final}, lost {lost}, {elapsed:.2f} s"
    )
    assert lost == 0


async def test_a_held_lock_times_out_without_blocking_the_loop(
    store_path: Path, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    storage = FileStorage(store_path, lock_timeout=0.3)
    await storage.set("k", "before")
    holder = worker("hold-lock", storage.lock_path)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    with pytest.raises(StorageLockTimeoutError) as caught:
        await storage.set("k", CANARY)
    waited = time.monotonic() - started
    ticker.cancel()

    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, StorageError)
    assert CANARY not in str(caught.value)
    assert 0.3 <= waited < 1.0  # bounded: the configured timeout, plus a poll interval
    assert ticks >= 10  # the loop kept running while a thread waited for the lock
    assert await storage.get("k") == "before"  # reads never wait for writers
    with pytest.raises(StorageLockTimeoutError):
        await FileStorage(store_path, lock_timeout=0.05).open()

    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=10)
    await storage.set("k", "after")
    assert await FileStorage(store_path).get("k") == "after"


def test_a_negative_lock_timeout_is_rejected(store_path: Path) -> None:
    with pytest.raises(ValueError):
        FileStorage(store_path, lock_timeout=-1)


# -- crashes (R9): the kill test ------------------------------------------------------------


@attrs.frozen
class KillReport:
    kills: int
    unreadable: int  # store missing values, torn, or quarantined after the kill
    mid_write: int  # kills that left an orphan temp file: the writer died inside a write
    generations: int  # distinct store versions seen after kills
    seconds: float


def kill_writers(
    worker: Callable[..., subprocess.Popen[str]],
    path: Path,
    *,
    kills: int,
    size: int,
    how: str,
    storage_class: Callable[[Path], Storage] = FileStorage,
) -> KillReport:
    """SIGKILL ``kills`` writer processes at random instants, inspecting the store after each."""
    asyncio.run(
        storage_class(path).update({"a": value_for(0, size), "b": value_for(0, size), "generation": "0"})
    )

    async def inspect() -> tuple[bool, list[str], int]:
        storage = storage_class(path)
        try:
            items = await storage.items("")
        except Exception:
            return False, [], -1
        issues = kinds(storage.drain_issues())
        try:
            generation = int(items["generation"])
        except (KeyError, ValueError):
            return False, issues, -1
        whole = items["a"] == items["b"] == value_for(generation, size) and len(items) == 3
        return whole and "quarantined" not in issues, issues, generation

    server = worker("fork-writers", path, size, how)
    assert server.stdin is not None and server.stdout is not None
    stdout = server.stdout
    writes: collections.Counter[str] = collections.Counter()  # "a write begins" lines per child

    def line(*, until_writes: tuple[str, int] | None = None) -> str:
        # Children's "w <seed>" lines interleave with the fork server's replies (and a killed
        # child's last ones may still be in the pipe): they are counted aside. Returns the next
        # server reply, or "" once child ``seed`` has begun ``n`` writes (``until_writes``).
        while until_writes is None or writes[until_writes[0]] < until_writes[1]:
            text = stdout.readline().strip()
            if not text.startswith("w "):
                return text
            writes[text[2:]] += 1
        return ""

    rng = random.Random(20261123)
    unreadable = mid_write = 0
    generations: set[int] = set()
    started = time.monotonic()
    for seed in range(1, kills + 1):
        server.stdin.write(f"fork {seed}\n")
        server.stdin.flush()
        pid = int(line())
        # Kill at a random point inside the child's 1st-3rd write: timed from the child's own
        # "a write begins" lines, so the kill lands inside writes however loaded the machine is.
        assert line(until_writes=(str(seed), rng.randint(1, 3))) == "", "the fork server spoke out of turn"
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        server.stdin.write(f"reap {pid}\n")
        server.stdin.flush()
        assert line() == "reaped"
        readable, issues, generation = asyncio.run(inspect())
        unreadable += not readable
        mid_write += "orphan-removed" in issues
        generations.add(generation)
    return KillReport(kills, unreadable, mid_write, len(generations), time.monotonic() - started)


@pytest.mark.slow
def test_writers_killed_mid_write_never_leave_an_unreadable_store(
    store_path: Path,
    worker: Callable[..., subprocess.Popen[str]],
    record_property: Callable[[str, object], None],
) -> None:
    # Two 1 MB values per write, so each write takes milliseconds and kills land inside it.
    report = kill_writers(worker, store_path, kills=200, size=1_000_000, how="filestorage")

    leftovers = sorted(p.name for p in store_path.parent.iterdir() if p.name.startswith(".users.json.tmp-"))
    record_property("kills", report.kills)
    record_property("unreadable", report.unreadable)
    print(
        f"\nR9 kill test: {report.kills} SIGKILLs, unreadable {report.unreadable}/{report.kills}, "
        f"{report.mid_write} killed mid-write (orphan temp cleaned), "
        f"{report.generations} distinct generations seen, {report.seconds:.1f} s"
    )
    assert report.unreadable == 0
    assert leftovers == []
    assert report.mid_write > 0  # some kills really landed inside a write
    assert report.generations > 10  # and the writers really made progress between kills


@pytest.mark.slow
def test_the_kill_test_catches_a_writer_that_rewrites_in_place(
    store_path: Path, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    # Negative control: the same harness against a naive in-place writer must see torn stores.
    report = kill_writers(worker, store_path, kills=40, size=1_000_000, how="in-place")
    print(f"\nR9 control (in-place writes): unreadable {report.unreadable}/{report.kills}")
    assert report.unreadable > 0


# -- scale ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_restoring_100k_users_takes_one_read(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # How fast is benchmarks/run.py's business (timed unit tests measure the machine's load);
    # this checks that a restore is one read and one parse of the file, whatever its size.
    record = json.dumps(
        {
            "accessToken": "eyJ" + "a" * 250,
            "refreshToken": "eyJ" + "b" * 250,
            "state": "LoggedIn",
            "deviceId": "0" * 24,
        }
    )
    assert 550 <= len(record) <= 650
    users = {f"app(x):user({i:024x}):record": record for i in range(100_000)}
    await FileStorage(store_path).update({**users, "app(x):userIds": "[]", "app(y):other": "z"})

    reads: list[int] = []
    parses: list[int] = []
    real_read_all, real_parse = file_module._read_all, file_module._parse

    def counting_read_all(fd: int) -> bytes:
        data = real_read_all(fd)
        reads.append(len(data))
        return data

    def counting_parse(data: bytes) -> dict[str, str]:
        parses.append(len(data))
        return real_parse(data)

    monkeypatch.setattr(file_module, "_read_all", counting_read_all)
    monkeypatch.setattr(file_module, "_parse", counting_parse)
    storage = FileStorage(store_path)
    restored = await storage.items("app(x):user(")
    again = await storage.items("app(x):user(")

    assert len(restored) == 100_000 and again == restored
    assert restored["app(x):user(00000000000000000000002a):record"] == record
    size = await asyncio.to_thread(os.path.getsize, store_path)
    assert reads == [size] and parses == [size]  # the second items() came from the cache
