"""Shared type aliases."""

from __future__ import annotations

from typing import TypeAlias

# Anything with the buffer protocol that holds bytes.
Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = ["Buffer"]
