"""Serve an App Services export: providers, a ported function, a private one, values, a trigger."""

import json
from pathlib import Path

from appusers import App, Credentials
from appusers.errors import FunctionNotFoundError
from appusers.server import LocalServer
from appusers.server.appdir import read_app_dir

# The files of a (small) `appservices pull` export, written out here so the example runs as is.
EXPORT = {
    "root_config.json": {"name": "notes", "deployment_model": "GLOBAL", "environment": "development"},
    "auth/providers.json": {
        "anon-user": {"name": "anon-user", "type": "anon-user", "disabled": False},
    },
    "data_sources/mongodb-atlas/config.json": {"name": "mongodb-atlas", "type": "mongodb-atlas"},
    "data_sources/mongodb-atlas/notes/entries/rules.json": {
        "database": "notes",
        "collection": "entries",
        "roles": [{"name": "owner", "apply_when": {"owner_id": "%%user.id"}, "read": True, "write": True}],
    },
    "environments/development.json": {"values": {"motd": "Hello from development"}},
    "values/maxNotes.json": {"name": "maxNotes", "value": 100, "from_secret": False},
    "functions/config.json": [
        {"name": "welcome", "private": False},
        {"name": "countNotes", "private": True, "run_as_system": True},
        {"name": "onFirstLogin", "private": True},
    ],
    "triggers/onFirstLogin.json": {
        "name": "onFirstLogin",
        "type": "AUTHENTICATION",
        "disabled": False,
        "config": {"operation_type": "CREATE", "providers": ["anon-user"]},
        "event_processors": {"FUNCTION": {"config": {"function_name": "onFirstLogin"}}},
    },
}

# functions/<name>.js ported to functions/<name>.py: `exports = function(...)` becomes main(context, ...).
SOURCES = {
    "welcome": '''
async def main(context, name):
    notes = await context.functions.execute("countNotes", context.user.id)  # private: fine from here
    return {
        "text": f"{context.environment.values['motd']}, {name}",
        "notes": notes,
        "limit": context.values.get("maxNotes"),
    }
''',
    "countNotes": '''
async def main(context, user_id):
    entries = context.services.get("mongodb-atlas").db("notes").collection("entries")
    return await entries.count({"owner_id": user_id})
''',
    "onFirstLogin": '''
async def main(context, auth_event):
    entries = context.services.get("mongodb-atlas").db("notes").collection("entries")
    await entries.insert_one({"owner_id": auth_event["user"]["id"], "text": "Welcome!"})
''',
}


async def main(workdir: Path) -> None:
    root = workdir / "notes-export"
    for name, content in EXPORT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(content, indent=2))
    for name, source in SOURCES.items():
        (root / "functions" / f"{name}.py").write_text(source)

    loaded = read_app_dir(root)  # ConfigError naming file and key if anything is off
    assert loaded.warnings == ()  # nothing in this export goes unserved
    assert loaded.config.app_id == "notes"  # no .mdb/meta.json: the app's name

    async with LocalServer(config=loaded.config, data_dir=workdir / "data") as server:
        async with App(server.app_id, base_url=server.url) as app:
            user = await app.log_in(Credentials.anonymous())
            await server.wait_for_triggers()  # the CREATE trigger ran after the log-in
            assert await user.call_function("welcome", "Ana") == {
                "text": "Hello from development, Ana",
                "notes": 1,
                "limit": 100,
            }
            try:
                await user.call_function("countNotes", user.id)
            except FunctionNotFoundError:
                pass  # private: to clients it does not exist
            else:
                raise AssertionError("a private function answered a client")
