"""RFC 8785 JSON Canonicalization Scheme (JCS).

The canonical bytes of an event are its Merkle leaf, so equal events give equal
leaves on every platform. Rules: object members sorted by the UTF-16 code units
of their names, no insignificant whitespace, strings with only the mandatory
escapes, numbers in ECMAScript ``Number.prototype.toString`` form.

Restrictions (I-JSON, RFC 7493): integers must fit an IEEE double exactly
(|n| <= 2**53 - 1); NaN, infinities and lone surrogates are rejected. Money is
kept in integer minor units so it never meets a float.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["canonicalize", "es_number"]

_MAX_SAFE = 2**53 - 1


def es_number(x: float) -> str:
    """Formats a number as ECMAScript's Number.prototype.toString does."""
    if isinstance(x, bool):
        msg = "bool is not a number here"
        raise TypeError(msg)
    if isinstance(x, int):
        if abs(x) > _MAX_SAFE:
            msg = f"integer {x} does not fit an IEEE double exactly (I-JSON)"
            raise ValueError(msg)
        return str(x)
    if not math.isfinite(x):
        msg = f"{x} cannot be represented in JSON"
        raise ValueError(msg)
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    # repr gives the shortest round-trip digits, as ECMAScript requires.
    mantissa, _, exp_s = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    # value = 0.DIGITS * 10**n, with DIGITS free of leading and trailing zeros
    digits = int_part + frac_part
    n = len(int_part) + (int(exp_s) if exp_s else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        out = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + out


def _string(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        msg = "string contains a lone surrogate, which JCS does not allow"
        raise ValueError(msg) from None
    return json.dumps(s, ensure_ascii=False)


def _emit(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int | float):
        out.append(es_number(v))
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, Mapping):
        keys = list(v.keys())
        for k in keys:
            if not isinstance(k, str):
                msg = f"object keys must be strings, got {type(k).__name__}"
                raise TypeError(msg)
        keys.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, k in enumerate(keys):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _emit(v[k], out)
        out.append("}")
    elif isinstance(v, Sequence) and not isinstance(v, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        msg = f"cannot canonicalize a {type(v).__name__}"
        raise TypeError(msg)


def _simple(v: Any) -> bool:
    """True when json.dumps(sort_keys=True) already gives the JCS form: no
    floats (ECMAScript formats them differently), integers within I-JSON,
    and no object key beyond the BMP (code point order = UTF-16 order there)."""
    if isinstance(v, str) or v is None or v is True or v is False:
        return True
    if isinstance(v, int):
        return -_MAX_SAFE <= v <= _MAX_SAFE
    if isinstance(v, dict):
        for k, item in v.items():
            if not isinstance(k, str) or (not k.isascii() and any(ord(c) > 0xFFFF for c in k)):
                return False
            if not _simple(item):
                return False
        return True
    if isinstance(v, list | tuple):
        return all(_simple(item) for item in v)
    return False


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _simple(value):
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the full path below names the problem
    out: list[str] = []
    _emit(value, out)
    return "".join(out).encode("utf-8")
