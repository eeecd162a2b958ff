"""The npm Admin API client ``atlas-app-services-admin-api`` 1.5.6, run in Node, against a LocalServer.

The server runs in this process with an admin key pair; ``admin_api.mjs`` drives the
Admin API with the npm client where the client works and with raw HTTP where it does not
(the script's header says which and why), printing one JSON line per step. The test
asserts every expected step passed, then checks the server-side effects.

Node is the only thing that may make this module skip. ``node_modules`` is installed from
the committed lockfile by ``.ci/install-admin-interop.sh`` (run by ``.ci/test``); outside
CI a missing tree is installed with ``npm ci`` on first use.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
VERSION = "1.5.6"
MIN_NODE_MAJOR = 20
TIMEOUT = 120.0
PUBLIC = "npmadmin"
PRIVATE = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

#: In order. ``users.list_client_defect`` asserts the client's adminListUsers defect is
#: still there; ``users.list_raw`` and ``session.refresh`` use raw HTTP / the bare AdminApi.
STEPS = [
    "client.initialize",
    "apps.list",
    "users.create",
    "users.get",
    "users.list_client_defect",
    "users.list_raw",
    "users.disable",
    "users.enable",
    "users.logout",
    "pending.list",
    "pending.confirm",
    "pending.delete",
    "users.delete",
    "session.refresh",
    "session.wrong_key",
    "session.client_token_refused",
]

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        NODE is None, reason="node is not installed; the Admin API npm suite needs Node >= 20"
    ),
]


@pytest.fixture(scope="session")
def admin_client_modules() -> Path:
    """``tests/admin_interop/node_modules`` with the pinned client, installed if missing."""
    assert NODE is not None
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    assert match is not None, version
    if int(match.group(1)) < MIN_NODE_MAJOR:
        pytest.fail(f"node {version} is too old: need Node >= {MIN_NODE_MAJOR}")
    package = HERE / "node_modules" / "atlas-app-services-admin-api" / "package.json"
    if not package.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(
                "tests/admin_interop/node_modules is missing: CI must run .ci/install-admin-interop.sh"
            )
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install tests/admin_interop/node_modules")
        done = subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix tests/admin_interop failed:\n{done.stderr[-3000:]}")
    installed = json.loads(package.read_text())["version"]
    if installed != VERSION:
        pytest.fail(f"tests/admin_interop has atlas-app-services-admin-api {installed}, expected {VERSION}")
    return HERE / "node_modules"


@attrs.frozen
class Run:
    returncode: int | None
    steps: list[dict[str, Any]]
    stderr: str
    noise: list[str]

    def report(self) -> str:
        lines = [f"exit code {self.returncode}"]
        for record in self.steps:
            lines.append(f"  {'ok  ' if record.get('ok') else 'FAIL'} {record['step']}")
            if not record.get("ok"):
                lines.append("       " + json.dumps(record.get("detail"))[:3000])
        lines.extend(f"  stdout: {line}" for line in self.noise[-20:])
        if self.stderr.strip():
            lines.append("  stderr: " + self.stderr.strip()[-3000:])
        return "\n".join(lines)


async def run_script(env: dict[str, str]) -> Run:
    assert NODE is not None
    full_env = {**os.environ, **env}
    full_env.pop("NODE_OPTIONS", None)
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(HERE / "admin_api.mjs"),
        cwd=str(HERE),
        env=full_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    steps, noise = [], []
    for line in out.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), str):
            steps.append(record)
        elif line.strip():
            noise.append(line)
    return Run(proc.returncode, steps, err.decode(errors="replace"), noise)


async def test_npm_admin_client_drives_the_user_routes(admin_client_modules: Path, tmp_path: Path) -> None:
    from appusers.server import LocalServer, load_config
    from appusers.server._config import AdminKey, AdminSettings, ScryptSettings

    config = attrs.evolve(
        load_config(None),
        admin=AdminSettings(keys=(AdminKey.from_private(PUBLIC, PRIVATE),)),
        scrypt=ScryptSettings(n=2**4, r=1, p=1),
    )
    async with LocalServer(config=config, data_dir=tmp_path / "data") as server:
        run = await run_script(
            {
                "SERVER_URL": server.url,
                "CLIENT_APP_ID": server.app_id,
                "GROUP_ID": server.group_id,
                "APP_OBJECT_ID": server.app_object_id,
                "ADMIN_PUBLIC_KEY": PUBLIC,
                "ADMIN_PRIVATE_KEY": PRIVATE,
            }
        )
        failed = [r["step"] for r in run.steps if not r.get("ok")]
        seen = [r["step"] for r in run.steps]
        assert not failed and seen == STEPS and run.returncode == 0, run.report()
        detail = {r["step"]: r["detail"] for r in run.steps}
        assert detail["users.list_client_defect"]["requested"].endswith(
            "/groups/%7BgroupId%7D/apps/%7BappId%7D/users"
        )
        assert detail["session.wrong_key"]["errorCode"] == "InvalidPassword"
        assert detail["session.client_token_refused"]["otherGroup"] == "GroupNotFound"
        # Server side: the pending user that was deleted is gone, the confirmed one is a
        # real account, and no secret of the run is in the data directory in clear.
        pending = [m["email"] for m in server.read_outbox() if m["kind"] == "confirm"]
        assert len(pending) == 2
        for path in (p for p in server.data_dir.rglob("*") if p.is_file()):
            assert PRIVATE.encode() not in path.read_bytes(), f"the admin private key is in {path.name}"
