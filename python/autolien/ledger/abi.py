"""Solidity ABI encoding (``abi.encode``) for OpenZeppelin standard leaves.

Covers the types a Merkle leaf uses in practice: ``address``, ``bool``,
``bytes1``..``bytes32``, ``uint8``..``uint256`` and ``int8``..``int256`` (and
the aliases ``uint``/``int``), ``string``, ``bytes``, fixed and dynamic arrays
(``T[k]``, ``T[]``) and tuples (``(T1,T2)``). Values follow ethers' AbiCoder,
which OpenZeppelin's merkle-tree uses: integers may be Python ints or decimal /
0x-hex strings; byte values may be bytes or 0x-hex strings; addresses are
0x-hex strings (mixed case must carry a valid EIP-55 checksum).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _core

__all__ = ["AbiType", "encode", "parse_type"]

_INT_RE = re.compile(r"^(u?)int(\d*)$")
_BYTES_RE = re.compile(r"^bytes(\d+)$")


@dataclass(frozen=True)
class AbiType:
    """A parsed ABI type."""

    kind: str  # uint, int, address, bool, fixedbytes, bytes, string, array, tuple
    bits: int = 0  # uint/int width, or fixedbytes length in bytes
    length: int | None = None  # array length (None: dynamic array)
    item: AbiType | None = None  # array element type
    components: tuple[AbiType, ...] = ()  # tuple members

    @property
    def dynamic(self) -> bool:
        if self.kind in ("bytes", "string"):
            return True
        if self.kind == "array":
            assert self.item is not None
            return self.length is None or self.item.dynamic
        if self.kind == "tuple":
            return any(c.dynamic for c in self.components)
        return False

    @property
    def head_size(self) -> int:
        """Bytes this type takes in the head of an enclosing tuple."""
        if self.dynamic:
            return 32
        if self.kind == "array":
            assert self.item is not None
            assert self.length is not None
            return self.length * self.item.head_size
        if self.kind == "tuple":
            return sum(c.head_size for c in self.components)
        return 32


def _split_top_level(s: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_type(t: str) -> AbiType:
    """Parses a Solidity ABI type string; ValueError for unknown types."""
    s = t.strip()
    if s.endswith("]"):
        open_at = s.rindex("[")
        inner = parse_type(s[:open_at])
        n = s[open_at + 1 : -1].strip()
        if n == "":
            return AbiType("array", item=inner)
        if not n.isdigit() or int(n) == 0:
            msg = f"bad array length in type {t!r} (fixed arrays need 1 or more items)"
            raise ValueError(msg)
        return AbiType("array", item=inner, length=int(n))
    if s.startswith("(") and s.endswith(")"):
        body = s[1:-1]
        comps = tuple(parse_type(p) for p in _split_top_level(body)) if body.strip() else ()
        return AbiType("tuple", components=comps)
    if s.startswith("tuple(") and s.endswith(")"):
        return parse_type(s[5:])
    m = _INT_RE.match(s)
    if m:
        bits = int(m.group(2)) if m.group(2) else 256
        if bits % 8 or not 8 <= bits <= 256:
            msg = f"bad integer width in type {t!r}"
            raise ValueError(msg)
        return AbiType("uint" if m.group(1) else "int", bits=bits)
    m = _BYTES_RE.match(s)
    if m:
        width = int(m.group(1))
        if not 1 <= width <= 32:
            msg = f"bad bytes length in type {t!r}"
            raise ValueError(msg)
        return AbiType("fixedbytes", bits=width)
    if s in ("address", "bool", "bytes", "string"):
        return AbiType(s)
    msg = f"unsupported ABI type {t!r}"
    raise ValueError(msg)


def _to_int(v: Any, t: str) -> int:
    if isinstance(v, bool):
        msg = f"{t} value must be an integer, got bool"
        raise TypeError(msg)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip()
        neg = s.startswith("-")
        body = s[1:] if neg else s
        try:
            n = int(body, 16) if body.lower().startswith("0x") else int(body, 10)
        except ValueError:
            msg = f"{t} value {v!r} is not an integer"
            raise ValueError(msg) from None
        return -n if neg else n
    msg = f"{t} value must be int or str, got {type(v).__name__}"
    raise TypeError(msg)


def _to_bytes(v: Any, t: str) -> bytes:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        if not v.startswith(("0x", "0X")):
            msg = f"{t} value must be 0x-prefixed hex, got {v!r}"
            raise ValueError(msg)
        body = v[2:]
        if len(body) % 2:
            msg = f"{t} value {v!r} has an odd number of hex digits"
            raise ValueError(msg)
        try:
            return bytes.fromhex(body)
        except ValueError:
            msg = f"{t} value {v!r} is not hex"
            raise ValueError(msg) from None
    msg = f"{t} value must be bytes or a hex string, got {type(v).__name__}"
    raise TypeError(msg)


def checksum_address(addr: bytes) -> str:
    """EIP-55 mixed-case checksum form of a 20-byte address."""
    low = addr.hex()
    digest = _core.keccak256(low.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c for c, d in zip(low, digest[:40], strict=True)
    )


def _address(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray):
        if len(v) != 20:
            msg = f"address must be 20 bytes, got {len(v)}"
            raise ValueError(msg)
        return bytes(v)
    if not isinstance(v, str):
        msg = f"address value must be a hex string, got {type(v).__name__}"
        raise TypeError(msg)
    if not re.fullmatch(r"0[xX][0-9a-fA-F]{40}", v):
        msg = f"invalid address {v!r}"
        raise ValueError(msg)
    raw = bytes.fromhex(v[2:])
    body = v[2:]
    if body != body.lower() and body != body.upper() and checksum_address(raw) != "0x" + body:
        msg = f"bad EIP-55 checksum in address {v!r}"
        raise ValueError(msg)
    return raw


def _pad_right(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 32)


def _encode_static_or_tail(t: AbiType, v: Any, name: str) -> bytes:
    k = t.kind
    if k == "uint":
        n = _to_int(v, name)
        if not 0 <= n < (1 << t.bits):
            msg = f"value {n} out of range for uint{t.bits}"
            raise ValueError(msg)
        return n.to_bytes(32, "big")
    if k == "int":
        n = _to_int(v, name)
        lim = 1 << (t.bits - 1)
        if not -lim <= n < lim:
            msg = f"value {n} out of range for int{t.bits}"
            raise ValueError(msg)
        return (n % (1 << 256)).to_bytes(32, "big")
    if k == "address":
        return b"\x00" * 12 + _address(v)
    if k == "bool":
        if not isinstance(v, bool):
            msg = f"bool value must be True or False, got {type(v).__name__}"
            raise TypeError(msg)
        return (1 if v else 0).to_bytes(32, "big")
    if k == "fixedbytes":
        b = _to_bytes(v, name)
        if len(b) != t.bits:
            msg = f"bytes{t.bits} value must be exactly {t.bits} bytes, got {len(b)}"
            raise ValueError(msg)
        return _pad_right(b)
    if k == "bytes":
        b = _to_bytes(v, name)
        return len(b).to_bytes(32, "big") + _pad_right(b)
    if k == "string":
        if not isinstance(v, str):
            msg = f"string value must be str, got {type(v).__name__}"
            raise TypeError(msg)
        b = v.encode("utf-8")
        return len(b).to_bytes(32, "big") + _pad_right(b)
    if k == "array":
        assert t.item is not None
        if isinstance(v, str | bytes) or not isinstance(v, Sequence):
            msg = f"array value must be a sequence, got {type(v).__name__}"
            raise TypeError(msg)
        if t.length is not None and len(v) != t.length:
            msg = f"array value must have {t.length} items, got {len(v)}"
            raise ValueError(msg)
        body = _encode_tuple([t.item] * len(v), v)
        return body if t.length is not None else len(v).to_bytes(32, "big") + body
    if k == "tuple":
        if isinstance(v, str | bytes) or not isinstance(v, Sequence):
            msg = f"tuple value must be a sequence, got {type(v).__name__}"
            raise TypeError(msg)
        return _encode_tuple(list(t.components), v)
    raise AssertionError(k)  # pragma: no cover


def _encode_tuple(types: Sequence[AbiType], values: Sequence[Any]) -> bytes:
    if len(types) != len(values):
        msg = f"expected {len(types)} values, got {len(values)}"
        raise ValueError(msg)
    head_len = sum(t.head_size for t in types)
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = head_len
    for i, (t, v) in enumerate(zip(types, values, strict=True)):
        enc = _encode_static_or_tail(t, v, f"values[{i}]")
        if t.dynamic:
            heads.append(offset.to_bytes(32, "big"))
            tails.append(enc)
            offset += len(enc)
        else:
            heads.append(enc)
    return b"".join(heads) + b"".join(tails)


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``abi.encode(values)`` for the given Solidity type strings."""
    if isinstance(types, str):
        msg = "types must be a sequence of type strings, not one string"
        raise TypeError(msg)
    return _encode_tuple([parse_type(t) for t in types], values)
