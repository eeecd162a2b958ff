"""EncryptedStorage: every value sealed with AES-256-GCM before it reaches an inner storage.

* Values become ``e1:<base64url(12-byte nonce + ciphertext + tag)>``; the storage key is the
  associated data, so a sealed value moved to another key (another user's record) does not
  open. Keys stay readable (app and user ids, no secrets): tokens never reach the disk in
  plain text.
* The 256-bit key comes from the app (``key=``) or from the OS keyring through ``keyring``
  (service ``appusers``, one entry per ``key_name``), created there on first use. There is
  no plaintext fallback: with no usable keyring and no ``key=`` every operation raises
  :class:`~appusers.errors.StorageKeyUnavailableError`.
* A record ``appusers-encrypted:check`` holds a sealed known text. If it does not open (the
  key changed, or the keyring lost it), the store is quarantined: every sealed value moves
  to ``appusers-quarantine:<UTC stamp>:<key>`` in the inner storage (kept for whoever still
  has the old key), the storage starts empty and a ``"quarantined"`` issue is queued, which
  the App publishes as a :class:`~appusers.StorageRecovered` event. A single value that does
  not open (tampered) is left out and reported as ``"record-dropped"``.
* Plain values found in the inner storage (an unencrypted store being upgraded) are sealed
  in place at open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from appusers.errors import InvalidArgumentError, StorageKeyUnavailableError
from appusers.storage import Storage, StorageIssue

from ._memory import _check_key, _check_value, _checked_changes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EncryptedStorage"]

_logger = logging.getLogger("appusers.storage")

_PREFIX = "e1:"
_CHECK_KEY = "appusers-encrypted:check"
_CHECK_TEXT = "appusers encrypted storage v1"
_QUARANTINE = "appusers-quarantine:"
_RESERVED = (_CHECK_KEY, _QUARANTINE)
_KEY_BYTES = 32
KEYRING_SERVICE = "appusers"


class EncryptedStorage:
    """A :class:`~appusers.storage.Storage` that seals every value before ``inner`` stores it.

    ``key``: 32 bytes from the app (e.g. from its own secret store); when omitted the key is
    read from, or created in, the OS keyring under service ``"appusers"`` and user
    ``key_name`` (``keyring_backend`` picks a backend; default: ``keyring.get_keyring()``).
    Needs the ``secure`` extra: ``pip install "appusers[secure]"``.
    """

    def __init__(
        self,
        inner: Storage,
        *,
        key: bytes | None = None,
        key_name: str = "session-key",
        keyring_backend: Any = None,
    ) -> None:
        if not isinstance(inner, Storage):
            raise InvalidArgumentError("inner must be a Storage")
        if key is not None and (not isinstance(key, bytes) or len(key) != _KEY_BYTES):
            raise InvalidArgumentError(f"key must be {_KEY_BYTES} bytes (AES-256)")
        if not isinstance(key_name, str) or not key_name:
            raise InvalidArgumentError("key_name must be a non-empty string")
        self._inner = inner
        self._key = key
        self._key_name = key_name
        self._backend = keyring_backend
        self._aead: AESGCM | None = None
        self._open_lock = asyncio.Lock()
        self._issues: list[StorageIssue] = []
        self._issues_lock = threading.Lock()

    def __repr__(self) -> str:
        # Never the key: only where the sealed values go.
        return f"EncryptedStorage({self._inner!r})"

    @property
    def inner(self) -> Storage:
        """The storage that keeps the sealed values."""
        return self._inner

    async def open(self) -> None:
        """Get the key (keyring or app), check it against the store, quarantine what it cannot
        open and seal plain values. Every operation does this on first use."""
        if self._aead is not None:
            return
        async with self._open_lock:
            if self._aead is None:
                await self._open()

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None (also when it does not open: see drain_issues)."""
        _check_key(key)
        aead = await self._ready()
        if key.startswith(_RESERVED):
            return None
        sealed = await self._inner.get(key)
        return None if sealed is None else self._open_value(aead, key, sealed)

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its opened value (a new dict)."""
        _check_key(prefix)
        aead = await self._ready()
        found: dict[str, str] = {}
        for key, sealed in (await self._inner.items(prefix)).items():
            if key.startswith(_RESERVED):
                continue
            value = self._open_value(aead, key, sealed)
            if value is not None:
                found[key] = value
        return found

    async def set(self, key: str, value: str) -> None:
        """Seal ``value`` and store it under ``key``."""
        _check_key(key)
        _check_value(value)
        await self.update({key: value})

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        _check_key(key)
        await self.update({key: None})

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Seal and apply several sets and removes as one update of the inner storage."""
        checked = _checked_changes(changes)
        for key in checked:
            if key.startswith(_RESERVED):
                raise InvalidArgumentError("keys starting with 'appusers-encrypted:' are reserved")
        aead = await self._ready()
        await self._inner.update(
            {k: None if v is None else _seal(aead, k, v) for k, v in checked.items()}
        )

    def drain_issues(self) -> list[StorageIssue]:
        """The inner storage's repairs, then this one's (quarantines, dropped records)."""
        inner = self._inner.drain_issues()
        with self._issues_lock:
            own, self._issues = self._issues, []
        return [*inner, *own]

    # -- plumbing -------------------------------------------------------------------------

    async def _ready(self) -> AESGCM:
        await self.open()
        assert self._aead is not None
        return self._aead

    async def _open(self) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - the secure extra is part of dev
            raise StorageKeyUnavailableError(
                'EncryptedStorage needs the secure extra: pip install "appusers[secure]"'
            ) from None
        if self._key is not None:
            key, created = self._key, False
        else:
            key, created = await asyncio.to_thread(self._keyring_key)
        aead = AESGCM(key)
        current = await self._inner.items("")
        check = current.get(_CHECK_KEY)
        records = {k: v for k, v in current.items() if not k.startswith(_RESERVED)}
        sealed = {k: v for k, v in records.items() if v.startswith(_PREFIX)}
        plain = {k: v for k, v in records.items() if not v.startswith(_PREFIX)}
        key_fits = check is not None and _open_sealed(aead, _CHECK_KEY, check) == _CHECK_TEXT
        changes: dict[str, str | None] = {}
        if not key_fits and (check is not None or sealed):
            why = (
                "its key is not in the keyring any more (a new key was made)" if created
                else "it was sealed with another key"
            )
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            moved = {k: v for k, v in current.items() if not k.startswith(_QUARANTINE) and k not in plain}
            for k, v in moved.items():
                changes[f"{_QUARANTINE}{stamp}:{k}"] = v
                changes[k] = None
            _logger.warning("the encrypted session store %r could not be opened (%s); quarantined", self, why)
            self._report(
                "quarantined",
                f"the store could not be opened: {why}; its {len(moved)} sealed value(s) were moved "
                f"under {_QUARANTINE}{stamp}: and the storage starts empty",
            )
        if not key_fits:
            changes[_CHECK_KEY] = _seal(aead, _CHECK_KEY, _CHECK_TEXT)
        for k, v in plain.items():
            changes[k] = _seal(aead, k, v)  # an unencrypted store being upgraded: seal it in place
        if plain:
            _logger.info("sealed %d plain value(s) found in %r", len(plain), self)
        if changes:
            await self._inner.update(changes)
        self._aead = aead

    def _keyring_key(self) -> tuple[bytes, bool]:
        """The key from the keyring, made and stored there if missing; (key, made now)."""
        try:
            import keyring
            import keyring.errors
        except ImportError:  # pragma: no cover - the secure extra is part of dev
            raise StorageKeyUnavailableError(
                'no key given and the keyring package is missing: pip install "appusers[secure]"'
            ) from None
        backend = self._backend if self._backend is not None else keyring.get_keyring()
        name = self._key_name
        try:
            stored = backend.get_password(KEYRING_SERVICE, self._key_name)
            if stored is not None:
                key = _decode_key(stored)
                if key is not None:
                    return key, False
                _logger.warning("the keyring entry %s/%s is not a key; replacing it", KEYRING_SERVICE, name)
            backend.set_password(KEYRING_SERVICE, name, _encode_key(secrets.token_bytes(_KEY_BYTES)))
            # Two processes may have raced to make the key: whichever the keyring kept wins.
            again = backend.get_password(KEYRING_SERVICE, self._key_name)
        except (keyring.errors.KeyringError, RuntimeError, OSError) as exc:
            raise StorageKeyUnavailableError(
                f"no usable OS keyring for the session key ({type(exc).__name__}) and no key= was "
                "given; the store is not written unencrypted"
            ) from None
        key = _decode_key(again) if isinstance(again, str) else None
        if key is None:
            raise StorageKeyUnavailableError("the keyring did not keep the session key")
        return key, True

    def _open_value(self, aead: AESGCM, key: str, sealed: str) -> str | None:
        value = _open_sealed(aead, key, sealed)
        if value is None:
            _logger.warning("a sealed value in %r did not open (damaged or moved); left out", self)
            self._report("record-dropped", "a sealed value did not open (damaged or moved); it is ignored")
        return value

    def _report(self, kind: str, detail: str) -> None:
        with self._issues_lock:
            self._issues.append(StorageIssue(kind=kind, detail=detail, path=repr(self._inner)))


def _seal(aead: AESGCM, key: str, value: str) -> str:
    nonce = os.urandom(12)
    box = aead.encrypt(nonce, value.encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass"))
    return _PREFIX + base64.urlsafe_b64encode(nonce + box).decode("ascii")


def _open_sealed(aead: AESGCM, key: str, sealed: str) -> str | None:
    from cryptography.exceptions import InvalidTag

    if not sealed.startswith(_PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
        if len(raw) < 12 + 16:
            return None
        plain = aead.decrypt(raw[:12], raw[12:], key.encode("utf-8", "surrogatepass"))
        return plain.decode("utf-8", "surrogatepass")
    except (InvalidTag, binascii.Error, ValueError):
        return None


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def _decode_key(text: str) -> bytes | None:
    try:
        key = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == _KEY_BYTES else None

