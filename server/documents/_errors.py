"""The one error the document store raises for bad input or a broken store."""

from __future__ import annotations

__all__ = ["DocumentStoreError"]


class DocumentStoreError(Exception):
    """A query, update or document the store rejects, a duplicate ``_id``, or a closed store.

    The message says what was wrong in MongoDB's words where MongoDB has them
    (``E11000 duplicate key error ...``); it never echoes whole documents, which
    may carry user data.
    """
