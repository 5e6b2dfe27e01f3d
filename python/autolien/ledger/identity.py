"""One object, one code: VIN validation and asset codes.

VIN (ISO 3779, and GB 16735 in China, where the check digit is mandatory):
17 characters from 0-9 and A-Z without I, O and Q; position 9 is the check
digit. Each character is transliterated (letters to 1..9), weighted by
8,7,6,5,4,3,2,10,0,9,8,7,6,5,4,3,2, summed, and taken mod 11; a remainder of
10 is written ``X``.

A VIN whose check digit is wrong is rejected by :func:`validate_vin`. The ledger
accepts one only with an explicit override and records the override, with its
reason, in the pledge event, so the exception stays visible to every member.

Asset code: ``AL`` + 16 Crockford base32 characters (the first 80 bits of
``SHA-256("autolien/asset/v1\\n" + VIN + "\\n" + pledge_id)``) + one ISO 7064
MOD 37-36 check character over everything before it. 19 characters from
0-9A-Z: URL-safe, and QR alphanumeric mode encodes it in 11 bytes. The code is
stable (same VIN and pledge, same code) and resolves to the asset's history
through the ledger's index.
"""

from __future__ import annotations

import hashlib

from ..errors import InvalidAssetCodeError, InvalidVINError

__all__ = [
    "asset_code",
    "validate_asset_code",
    "validate_vin",
    "vin_check_digit",
]

_TRANSLIT = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CODE_PREFIX = "AL"
_CODE_LEN = 19


def _require_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        msg = f"{name} must be str, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _normalize_vin(vin: str) -> str:
    v = _require_str(vin, "vin").strip().upper()
    if len(v) != 17:
        msg = f"VIN must have 17 characters, got {len(v)}: {vin!r}"
        raise InvalidVINError(msg)
    bad = sorted({c for c in v if c not in _TRANSLIT})
    if bad:
        msg = f"VIN {vin!r} has characters not allowed in a VIN (I, O, Q and non-alphanumerics): {''.join(bad)}"
        raise InvalidVINError(msg)
    return v


def vin_check_digit(vin: str) -> str:
    """The ISO 3779 check digit ('0'-'9' or 'X') that position 9 should hold."""
    v = _normalize_vin(vin)
    r = sum(_TRANSLIT[c] * w for c, w in zip(v, _WEIGHTS, strict=True)) % 11
    return "X" if r == 10 else str(r)


def validate_vin(vin: str, *, check_digit: bool = True) -> str:
    """Returns the VIN upper-cased; InvalidVINError names what is wrong.

    ``check_digit=False`` skips only the check digit (for VINs of markets that
    do not use one); length and alphabet are always checked.
    """
    v = _normalize_vin(vin)
    if check_digit:
        want = vin_check_digit(v)
        if v[8] != want:
            msg = f"VIN {v} fails its check digit: position 9 is {v[8]!r}, expected {want!r}"
            raise InvalidVINError(msg)
    return v


def _mod37_36_check(s: str) -> str:
    # ISO/IEC 7064 MOD 37-36 (hybrid system), alphabet 0-9A-Z.
    m = 36
    t = m
    for c in s:
        t = (t + _ALNUM.index(c)) % m
        t = (t or m) * 2 % (m + 1)
    return _ALNUM[(m + 1 - t) % m]


def asset_code(vin: str, pledge_id: str) -> str:
    """The asset code of a pledge of ``vin`` under ``pledge_id``."""
    v = _normalize_vin(vin)
    if not _require_str(pledge_id, "pledge_id"):
        msg = "pledge_id must be a non-empty str"
        raise ValueError(msg)
    digest = hashlib.sha256(f"autolien/asset/v1\n{v}\n{pledge_id}".encode()).digest()
    bits = int.from_bytes(digest[:10], "big")
    body = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(15, -1, -1))
    head = _CODE_PREFIX + body
    return head + _mod37_36_check(head)


def validate_asset_code(code: str) -> str:
    """Returns the code normalised (upper case, no separators) or raises InvalidAssetCodeError."""
    c = _require_str(code, "asset code").strip().upper().replace("-", "").replace(" ", "")
    if len(c) != _CODE_LEN or not c.startswith(_CODE_PREFIX):
        msg = f"asset code must be {_CODE_LEN} characters starting with {_CODE_PREFIX!r}, got {code!r}"
        raise InvalidAssetCodeError(msg)
    body = c[len(_CODE_PREFIX) : -1]
    if any(ch not in _CROCKFORD for ch in body) or c[-1] not in _ALNUM:
        msg = f"asset code {code!r} has characters outside its alphabet"
        raise InvalidAssetCodeError(msg)
    if _mod37_36_check(c[:-1]) != c[-1]:
        msg = f"asset code {code!r} fails its check character"
        raise InvalidAssetCodeError(msg)
    return c
