"""Load an App Services app directory (``appservices pull`` / realm-cli export) as server settings.

::

    from appusers.server import LocalServer
    from appusers.server.appdir import load_app_dir

    config = load_app_dir("my-app", secrets={"jwtKey": "..."})
    async with LocalServer(config=config) as server:
        ...

See docs/migrating.md for what is loaded, what is reported as not served, and what an
export needs (JavaScript functions ported to ``functions/<name>.py``).
"""

from ._loader import AppDirectory, load_app_dir, read_app_dir

__all__ = ["AppDirectory", "load_app_dir", "read_app_dir"]
