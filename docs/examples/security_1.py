"""What a user leaves on the device, in logs and in reprs: tokens in a private file, no password."""

import json
import logging
import stat
from pathlib import Path

from appusers import App, Credentials
from appusers.adapters import FileStorage
from appusers.errors import InvalidArgumentError


def last_email(outbox: Path) -> dict[str, str]:
    """The local server writes each email as a JSON line to <data>/outbox.jsonl."""
    return dict(json.loads(outbox.read_text().splitlines()[-1]))


async def main(base_url: str, app_id: str, outbox: Path, workdir: Path) -> None:
    log = _Recorder()
    logging.getLogger().addHandler(log)
    logging.getLogger().setLevel(logging.DEBUG)  # every logger, at its most talkative
    try:
        path = workdir / "private" / "users.json"
        async with App(app_id, base_url=base_url, storage=FileStorage(path)) as app:
            await app.email_password_auth.register_user("eve@example.com", "pass-phrase-1")
            mail = last_email(outbox)
            await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
            user = await app.log_in(Credentials.email_password("eve@example.com", "pass-phrase-1"))
            access_token, refresh_token = user.access_token, user.refresh_token
            assert access_token and refresh_token and log.lines  # requests were logged at DEBUG
            shown = [repr(user), str(user), repr(app), repr(app.storage), log.text()]
            for secret in ("pass-phrase-1", access_token, refresh_token):
                assert all(secret not in text for text in shown)

            # At rest: the tokens (not the password) in a file only this OS user can read.
            on_disk = path.read_text()
            assert "pass-phrase-1" not in on_disk and refresh_token in on_disk
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # created by the storage

            await user.log_out()
            assert refresh_token not in path.read_text()  # a log-out wipes the tokens it kept

        # Plain http to another machine is refused before anything is sent.
        async with App(app_id, base_url="http://192.0.2.1:9090", storage=FileStorage(path)) as remote:
            try:
                await remote.log_in(Credentials.anonymous())
            except InvalidArgumentError as exc:
                assert "allow_insecure_http" in str(exc)
            else:
                raise AssertionError("a password could have crossed the network in clear text")
    finally:
        logging.getLogger().removeHandler(log)


class _Recorder(logging.Handler):
    """Keeps every log line, to look for secrets in them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)
