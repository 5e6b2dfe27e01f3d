"""RFC 6962 / RFC 9162 Merkle log over the C++ core.

The log hashes leaves as ``H(0x00 || data)`` and nodes as ``H(0x01 || l || r)``
with SHA-256 (default) or Keccak-256, and keeps every perfect subtree so that
roots and proofs for any past size cost O(log n) hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np

from .. import _core
from .._typing import Buffer

HashName: TypeAlias = Literal["sha256", "keccak256"]

__all__ = [
    "HashName",
    "MerkleLog",
    "keccak256",
    "leaf_hash",
    "node_hash",
    "sha256",
    "sha256_backend",
    "verify_consistency",
    "verify_inclusion",
]


def sha256(data: Buffer) -> bytes:
    """SHA-256 digest (SHA-NI when the CPU has it, else portable C++)."""
    return _core.sha256(data)


def keccak256(data: Buffer) -> bytes:
    """Keccak-256 as Ethereum uses it (original Keccak padding, not SHA3-256)."""
    return _core.keccak256(data)


def sha256_backend() -> str:
    """The SHA-256 back end in use: ``"shani"`` or ``"portable"``."""
    return _core.sha256_backend()


def leaf_hash(data: Buffer, *, hash: HashName = "sha256") -> bytes:
    """RFC 6962 leaf hash ``H(0x00 || data)``."""
    return _core.rfc6962_leaf_hash(data, hash)


def node_hash(left: Buffer, right: Buffer, *, hash: HashName = "sha256") -> bytes:
    """RFC 6962 interior node hash ``H(0x01 || left || right)``."""
    return _core.rfc6962_node_hash(left, right, hash)


def verify_inclusion(
    leaf_hash: Buffer,
    index: int,
    size: int,
    proof: Sequence[Buffer],
    root: Buffer,
    *,
    hash: HashName = "sha256",
) -> bool:
    """Checks an RFC 9162 inclusion proof of leaf ``index`` in a tree of ``size``.

    Returns False for any proof that does not verify, whatever is wrong with it
    (bad sizes, a bad index, wrong lengths, tampered hashes). Only arguments of
    the wrong type raise TypeError.
    """
    return _core.verify_inclusion(leaf_hash, index, size, _as_proof(proof), root, hash=hash)


def verify_consistency(
    size1: int,
    size2: int,
    proof: Sequence[Buffer],
    root1: Buffer,
    root2: Buffer,
    *,
    hash: HashName = "sha256",
) -> bool:
    """Checks an RFC 9162 consistency proof between tree sizes ``size1 <= size2``.

    Consistency from size 0 is never valid; equal sizes need an empty proof and
    equal roots, compared as bytes of any length since nothing is hashed (as
    transparency-dev/merkle's reference verifier does). For unequal sizes a
    root or proof node that is not 32 bytes is invalid (docs/ledger.md,
    "conformance"). Like :func:`verify_inclusion` it returns False rather than
    raising, except for arguments of the wrong type.
    """
    return _core.verify_consistency(size1, size2, _as_proof(proof), root1, root2, hash=hash)


def _as_proof(proof: Sequence[Buffer]) -> list[Buffer] | tuple[Buffer, ...]:
    if isinstance(proof, list | tuple):
        return proof
    if isinstance(proof, bytes | bytearray | memoryview | str):
        msg = f"proof must be a sequence of bytes, got {type(proof).__name__}"
        raise TypeError(msg)
    try:
        return list(proof)
    except TypeError:
        msg = f"proof must be a sequence of bytes, got {type(proof).__name__}"
        raise TypeError(msg) from None


def _check_int(value: object, name: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        msg = f"{name} must be int, got {type(value).__name__}"
        raise TypeError(msg)
    return int(value)


class MerkleLog:
    """An append-only RFC 6962 Merkle log held in memory.

    >>> log = MerkleLog()
    >>> log.append(b"pledge:LSVAU2180N2183294")
    0
    >>> log.size
    1
    """

    __slots__ = ("_log",)

    def __init__(self, hash: HashName = "sha256") -> None:
        self._log = _core.MerkleLog(hash)

    def __repr__(self) -> str:
        return f"MerkleLog(hash={self.hash!r}, size={self.size})"

    def __len__(self) -> int:
        return self._log.size

    @property
    def hash(self) -> str:
        """The hash function: ``"sha256"`` or ``"keccak256"``."""
        return self._log.hash

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._log.size

    def append(self, data: Buffer) -> int:
        """Appends one record and returns its index."""
        return self._log.append(data)

    def append_leaf_hash(self, leaf_hash: Buffer) -> int:
        """Appends a leaf by its precomputed 32-byte leaf hash."""
        return self._log.append_leaf_hash(leaf_hash)

    def extend(self, items: Iterable[Buffer] | Any, *, backend: str = "cpu") -> tuple[int, int]:
        """Appends many records at once and returns ``(first_index, new_size)``.

        ``items`` may be an iterable of bytes-like objects, a C-contiguous 2-D
        ``uint8`` numpy array (one record per row) or a pyarrow binary array
        (``binary``/``large_binary``, chunked or not). Leaves and new nodes are
        hashed in parallel on the core's thread pool with the GIL released.
        ``backend="gpu"`` hashes the leaves and the new tree nodes on the GPU
        (bit-identical; the core stores them without rehashing), ``"auto"``
        does when a device is usable.
        """
        if backend != "cpu":
            from ..gpu import resolve_backend  # noqa: PLC0415 - lazy: CuPy only when used

            if resolve_backend(backend) == "gpu":
                from ..gpu.ledger import extend_log  # noqa: PLC0415 - lazy: CuPy only when used

                return extend_log(self._log, items, hash=self.hash)
        if isinstance(items, np.ndarray):
            if items.dtype != np.uint8 or items.ndim != 2:
                msg = f"items as an array must be 2-D uint8, got {items.ndim}-D {items.dtype}"
                raise ValueError(msg)
            return self._log.extend_rows(np.ascontiguousarray(items))
        arrow = _arrow_binary_chunks(items)
        if arrow is not None:
            first = self.size
            for data, offsets in arrow:
                self._log.extend_offsets(data, offsets)
            return first, self.size
        if isinstance(items, bytes | bytearray | memoryview | str):
            msg = f"items must be an iterable of records, got a single {type(items).__name__}"
            raise TypeError(msg)
        return self._log.extend(items)

    def extend_leaf_hashes(self, hashes: Iterable[Buffer]) -> tuple[int, int]:
        """Appends leaves by their precomputed 32-byte leaf hashes."""
        parts = [bytes(h) for h in hashes]
        for i, h in enumerate(parts):
            if len(h) != 32:
                msg = f"hashes[{i}] must be 32 bytes, got {len(h)}"
                raise ValueError(msg)
        return self._log.extend_leaf_hashes(b"".join(parts))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` leaves (default: all of them)."""
        if size is None:
            return self._log.root()
        return self._log.root(_check_int(size, "size"))

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash at ``index``; IndexError if out of range."""
        return self._log.leaf_hash(_check_int(index, "index"))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
        size = self.size if size is None else _check_int(size, "size")
        return self._log.inclusion_proof(_check_int(index, "index"), size)

    def inclusion_proofs(self, indices: Any, size: int | None = None) -> Any:
        """Audit paths of many leaves at once, computed in parallel.

        Returns a ``pyarrow.ListArray`` of ``fixed_size_binary(32)``: item ``k``
        is ``inclusion_proof(indices[k], size)``. Much faster than calling
        :meth:`inclusion_proof` in a loop when auditing many entries.
        """
        import pyarrow as pa  # noqa: PLC0415 - keeps `import autolien` light

        size = self.size if size is None else _check_int(size, "size")
        idx = np.ascontiguousarray(np.asarray(indices), dtype=np.int64)
        flat, offsets = self._log.inclusion_proofs(idx, size)
        values = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(32), len(flat), [None, pa.py_buffer(flat)]
        )
        if offsets[-1] > np.iinfo(np.int32).max:
            return pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), values)
        return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The proof that the tree of ``size1`` leaves is a prefix of ``size2``."""
        size2 = self.size if size2 is None else _check_int(size2, "size2")
        return self._log.consistency_proof(_check_int(size1, "size1"), size2)


def _arrow_binary_chunks(items: object) -> list[tuple[Any, Any]] | None:
    """(data, int64 offsets) per chunk for a pyarrow binary array, else None."""
    module = type(items).__module__
    if not module.startswith("pyarrow"):
        return None
    import pyarrow as pa  # noqa: PLC0415 - optional dependency, only for Arrow input

    if isinstance(items, pa.ChunkedArray):
        chunks = list(items.chunks)
    elif isinstance(items, pa.Array):
        chunks = [items]
    else:
        return None
    out = []
    for chunk in chunks:
        if pa.types.is_binary(chunk.type) or pa.types.is_string(chunk.type):
            off_dtype: Any = np.int32
        elif pa.types.is_large_binary(chunk.type) or pa.types.is_large_string(chunk.type):
            off_dtype = np.int64
        else:
            msg = f"items must be a binary Arrow array, got type {chunk.type}"
            raise TypeError(msg)
        if chunk.null_count:
            msg = "items must not contain nulls: a null record has no leaf"
            raise ValueError(msg)
        _, off_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(off_buf, dtype=off_dtype)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        offsets = offsets.astype(np.int64)
        data = (
            np.frombuffer(data_buf, dtype=np.uint8)
            if data_buf is not None
            else np.zeros(0, dtype=np.uint8)
        )
        out.append((data, offsets))
    return out
