"""A compact set of the addresses an import has written, kept as their 64-bit hashes.

A Python ``set`` of a million hashes takes about 76 MB (an int object and a slot each); this table takes
16 to 32 MB: the hashes sit in one flat array, found by linear probing. Two different addresses with the
same hash would be taken for one; at 64 bits that is about a one-in-ten-million chance per million
addresses, and it only miscounts a row (a duplicate instead of an update), it never loses one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_EMPTY = 0


class SeenKeys:
    """Membership of strings by hash. Never holds the strings themselves."""

    def __init__(self) -> None:
        self._table = array("q", bytes(8 * 1024))
        self._mask = len(self._table) - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: str) -> bool:
        wanted = hash(key) | 1  # odd, so never the empty mark
        table, mask = self._table, self._mask
        slot = wanted & mask
        while (found := table[slot]) != _EMPTY:
            if found == wanted:
                return True
            slot = (slot + 1) & mask
        return False

    def update(self, keys: Iterable[str]) -> None:
        """Add ``keys``."""
        for key in keys:
            self._add(hash(key) | 1)

    def _add(self, value: int) -> None:
        table, mask = self._table, self._mask
        slot = value & mask
        while (found := table[slot]) != _EMPTY:
            if found == value:
                return
            slot = (slot + 1) & mask
        table[slot] = value
        self._count += 1
        if self._count * 2 > len(table):  # at most half full, so probes stay short
            self._grow()

    def _grow(self) -> None:
        old = self._table
        self._table = array("q", bytes(16 * len(old)))
        self._mask = len(self._table) - 1
        self._count = 0
        for value in old:
            if value != _EMPTY:
                self._add(value)
