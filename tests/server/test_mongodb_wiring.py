"""``[mongodb] uri`` / ``--mongodb``: the MongoDB service served from a real MongoDB.

No MongoDB server runs where these tests run, so they cover what needs none: the setting's
parsing and validation (bad URIs refused with the password masked), the store pymongo's
``AsyncMongoClient`` gives, that the server picks it, the pure translation of a watch into a
change-stream pipeline, and that an unreachable server fails the start with one clear line
and no traceback. Queries against a live MongoDB are NOT exercised (docs/server.md says so).
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pymongo
import pytest

from appusers.server import ConfigError, LocalServer, ServerConfig, load_config
from appusers.server._config import MongoSettings, parse_mongodb_uri
from appusers.server.documents import DocumentStoreError, PyMongoDocumentStore, _pymongo

#: AsyncMongoClient is pymongo >= 4.10; the lowest-versions run (pymongo 4.6.3) checks the refusal instead.
needs_async_client = pytest.mark.skipif(
    tuple(pymongo.version_tuple[:2]) < (4, 10), reason="AsyncMongoClient needs pymongo >= 4.10"
)


@pytest.fixture
def pymongo_leaks() -> Iterator[None]:
    """Collect what pymongo leaves behind on a refused connection, inside the test.

    Closing an ``AsyncMongoClient`` while its monitor is connecting to a refused port drops
    that socket unclosed (pymongo's, not this server's); left to the garbage collector it
    warns in whichever later test happens to run then.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _closed_port() -> int:
    """A loopback port nothing listens on (bound and released: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(body)
    return path


def test_the_uri_and_timeout_are_read_from_the_mongodb_table(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path, '[mongodb]\nuri = "mongodb://db1:27017,db2/?replicaSet=rs0"\n'
                                                 "connect_timeout = 2.5\n"))  # fmt: skip
    assert config.mongodb == MongoSettings(uri="mongodb://db1:27017,db2/?replicaSet=rs0", connect_timeout=2.5)
    assert load_config(_config_file(tmp_path, "[mongodb]\n")).mongodb.uri is None
    assert ServerConfig.demo().mongodb.uri is None  # the embedded store stays the default


def test_the_password_of_a_uri_never_shows(tmp_path: Path) -> None:
    settings = load_config(
        _config_file(tmp_path, '[mongodb]\nuri = "mongodb://app:hunter2@db.example.com/?authSource=admin"\n')
    ).mongodb
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.safe_uri)
    assert settings.safe_uri == "mongodb://app:***@db.example.com/?authSource=admin"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://db.example.com", "expected mongodb://"),
        ("postgresql://db/x", "expected mongodb://"),
        ("", "expected mongodb://"),
        ("mongodb://", "not valid"),
        ("mongodb://db:notaport", "not valid"),
        ("mongodb://db:99999", "not valid"),
        ("mongodb://db/?noSuchOption=1", "not valid"),
        ("mongodb://db/?w=-5", "not valid"),
        ("mongodb+srv://db.example.com:27017", "one host name"),
        ("mongodb+srv://a.example.com,b.example.com", "one host name"),
        ("mongodb+srv://localhost", "one host name"),
    ],
)
def test_a_bad_uri_is_refused_with_the_reason(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mongodb_uri(uri)


def test_a_bad_uri_with_a_password_is_refused_without_it() -> None:
    for uri in (
        "mongodb://app:hunter2@db:notaport",
        "http://app:hunter2@db",
        "mongodb://app:hunter2@db/?x=1",
    ):
        with pytest.raises(ConfigError) as caught:
            parse_mongodb_uri(uri)
        assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("uri = 5", "mongodb.uri"),
        ('uri = "mongodb://db"\nconnect_timeout = 0', "mongodb.connect_timeout must be positive"),
        ('uri = "mongodb://db"\nconnect_timeout = "soon"', "mongodb.connect_timeout"),
        ('urii = "mongodb://db"', "did you mean uri"),
    ],
)
def test_a_bad_mongodb_table_is_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config_file(tmp_path, f"[mongodb]\n{body}\n"))


@needs_async_client
async def test_an_unreachable_mongodb_fails_the_store_quickly_and_clearly(pymongo_leaks: None) -> None:
    uri = f"mongodb://app:hunter2@127.0.0.1:{_closed_port()}/"
    started = time.monotonic()
    with pytest.raises(DocumentStoreError) as caught:
        await _pymongo.open_pymongo_store(uri, timeout=0.5, shown="mongodb://app:***@127.0.0.1/")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("cannot reach MongoDB at mongodb://app:***@127.0.0.1/ within 0.5 s")
    assert "hunter2" not in message and "Topology Description" not in message


async def test_an_old_pymongo_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymongo, "version_tuple", (4, 9, 2))
    monkeypatch.setattr(pymongo, "version", "4.9.2")
    with pytest.raises(DocumentStoreError, match=r"pymongo >= 4\.10.*installed: 4\.9\.2"):
        await _pymongo.open_pymongo_store("mongodb://db/", timeout=1, shown="mongodb://db/")


@needs_async_client
async def test_the_server_serves_documents_from_the_configured_mongodb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real AsyncMongoClient that never connects (no server here): the wiring is what is tested.
    opened: list[tuple[str, float]] = []

    async def lazily(uri: str, *, timeout: float, shown: str) -> PyMongoDocumentStore:
        opened.append((uri, timeout))
        return PyMongoDocumentStore(pymongo.AsyncMongoClient(uri, connect=False))

    monkeypatch.setattr(_pymongo, "open_pymongo_store", lazily)
    settings = MongoSettings(uri="mongodb://db.invalid:27017/", connect_timeout=3.0)
    config = attrs.evolve(ServerConfig.demo(), mongodb=settings)
    async with LocalServer(config=config, data_dir=tmp_path / "data") as server:
        assert isinstance(server._server_app.documents, PyMongoDocumentStore)
        assert opened == [("mongodb://db.invalid:27017/", 3.0)]
        # Nothing embedded was opened for documents.
        assert not (tmp_path / "data" / "documents" / "documents.sqlite3").stat().st_size


@needs_async_client
async def test_an_unreachable_mongodb_fails_the_server_start(tmp_path: Path, pymongo_leaks: None) -> None:
    settings = MongoSettings(uri=f"mongodb://127.0.0.1:{_closed_port()}/", connect_timeout=0.5)
    server = LocalServer(config=attrs.evolve(ServerConfig.demo(), mongodb=settings), data_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="cannot reach MongoDB"):
        await server.start()


@needs_async_client
def test_serve_with_an_unreachable_mongodb_exits_with_one_line(tmp_path: Path) -> None:
    config = _config_file(tmp_path, "[mongodb]\nconnect_timeout = 0.5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(tmp_path / "d"),
         "--config", str(config), "--mongodb", f"mongodb://app:hunter2@127.0.0.1:{_closed_port()}/"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "error: cannot reach MongoDB at mongodb://app:***@127.0.0.1" in err
    assert "Traceback" not in err and "hunter2" not in err


def test_serve_refuses_a_bad_mongodb_option(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(tmp_path / "d"),
         "--mongodb", "mysql://app:hunter2@db"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "expected mongodb://" in err and "hunter2" not in err, err


@needs_async_client
def test_a_watch_becomes_a_change_stream_pipeline() -> None:
    client: Any = pymongo.AsyncMongoClient("mongodb://db.invalid/", connect=False)
    coll = PyMongoDocumentStore(client).collection("shop", "orders")
    stream: Any = coll.watch(ids=[1, "b"], filter={"operationType": "insert"}, pre_images=True)
    assert stream._pipeline == [
        {"$match": {"documentKey._id": {"$in": [1, "b"]}}},
        {"$match": {"operationType": "insert"}},
    ]
    assert stream._pre_images is True and stream._stream is None  # opened on first read only
    assert coll.watch()._pipeline == []  # type: ignore[attr-defined]


def test_sorts_translate_to_pymongo_pairs() -> None:
    assert _pymongo._sort({"a": 1, "b": -1}) == [("a", 1), ("b", -1)]
    assert _pymongo._sort([("a", -1)]) == [("a", -1)]
    assert _pymongo._sort(None) is None and _pymongo._sort({}) is None


def test_a_guarded_write_is_narrowed_to_the_documents_it_read() -> None:
    # The filter is kept whole inside $and, so a positional "$" in the update still finds its array.
    assert _pymongo._within({"tags": "a"}, [1, 2]) == {"$and": [{"tags": "a"}, {"_id": {"$in": [1, 2]}}]}
    assert _pymongo._is_replacement({"a": 1}) and not _pymongo._is_replacement({"$set": {"a": 1}})
    assert not _pymongo._is_replacement({})


@pytest.mark.skipif(tuple(pymongo.version_tuple[:2]) >= (4, 10), reason="only with a pymongo older than 4.10")
def test_serve_with_an_old_pymongo_says_which_it_needs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(tmp_path / "d"),
         "--mongodb", "mongodb://127.0.0.1/"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "needs pymongo >= 4.10" in err and "Traceback" not in err, err
