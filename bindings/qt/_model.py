"""``UsersModel``: the App's users as a ``QAbstractListModel`` with named roles."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Slot,
)

from appusers import UserState

from ._snapshot import Row

__all__ = ["UsersModel"]

_Index = QModelIndex | QPersistentModelIndex


class UsersModel(QAbstractListModel):
    """Every user of the App (logged in or out), in storage order.

    Roles, by name for QML: ``userId``, ``state``, ``isLoggedIn``, ``isCurrent``,
    ``name``, ``email``, ``providerType``; ``Qt.DisplayRole`` is the name, else the
    email, else the id. Rows change on the GUI thread only, fed by :class:`QtApp`.
    """

    UserIdRole = Qt.ItemDataRole.UserRole + 1
    StateRole = Qt.ItemDataRole.UserRole + 2
    IsLoggedInRole = Qt.ItemDataRole.UserRole + 3
    IsCurrentRole = Qt.ItemDataRole.UserRole + 4
    NameRole = Qt.ItemDataRole.UserRole + 5
    EmailRole = Qt.ItemDataRole.UserRole + 6
    ProviderTypeRole = Qt.ItemDataRole.UserRole + 7

    _ROLE_NAMES = {
        UserIdRole: b"userId",
        StateRole: b"state",
        IsLoggedInRole: b"isLoggedIn",
        IsCurrentRole: b"isCurrent",
        NameRole: b"name",
        EmailRole: b"email",
        ProviderTypeRole: b"providerType",
    }

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._current: str | None = None

    # -- Qt model interface -----------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def roleNames(self) -> dict[int, QByteArray]:
        return {int(role): QByteArray(name) for role, name in self._ROLE_NAMES.items()}

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name or row.email or row.user_id
        if role == self.UserIdRole:
            return row.user_id
        if role == self.StateRole:
            return row.state.value
        if role == self.IsLoggedInRole:
            return row.state is UserState.LOGGED_IN
        if role == self.IsCurrentRole:
            return row.user_id == self._current
        if role == self.NameRole:
            return row.name
        if role == self.EmailRole:
            return row.email
        if role == self.ProviderTypeRole:
            return row.provider_type
        return None

    # -- Python / QML helpers ---------------------------------------------------------

    @Slot(int, result=str)
    def userId(self, row: int) -> str:
        """The id of the user on ``row`` ("" when out of range)."""
        return self._rows[row].user_id if 0 <= row < len(self._rows) else ""

    @Slot(str, result=int)
    def rowOf(self, user_id: str) -> int:
        """The row of ``user_id``, or -1."""
        for i, row in enumerate(self._rows):
            if row.user_id == user_id:
                return i
        return -1

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(self._rows)

    # -- updates from QtApp (GUI thread) ---------------------------------------------------

    def _set_rows(self, rows: tuple[Row, ...]) -> None:
        old = self._rows
        if [r.user_id for r in old] != [r.user_id for r in rows]:
            # Ids changed: a reset is simplest and, for a list of users, cheap enough.
            self.beginResetModel()
            self._rows = list(rows)
            self.endResetModel()
            return
        self._rows = list(rows)
        changed = [i for i, (a, b) in enumerate(zip(old, rows, strict=True)) if a != b]
        for i in changed:
            self.dataChanged.emit(self.index(i), self.index(i))

    def _set_current(self, user_id: str | None) -> None:
        old, self._current = self._current, user_id
        for uid in {old, user_id} - {None}:
            i = self.rowOf(uid)  # type: ignore[arg-type]
            if i >= 0:
                self.dataChanged.emit(self.index(i), self.index(i), [self.IsCurrentRole])
