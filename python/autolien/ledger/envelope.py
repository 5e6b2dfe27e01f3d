"""The ledger's on-disk envelope: the format constants, LEDGER.json, the
signed entry envelope and its canonical signing bytes, the consortium
genesis, and the books that a replay of the entries rebuilds.

Entries are RFC 8785 (JCS) canonical JSON, and those bytes are the Merkle
leaf. Every entry is an envelope::

    {"v": 1, "seq": n, "type": ..., "asset": code | null, "time": "...Z",
     "actor": member name, "data": {...}, "sig": base64 Ed25519}

``sig`` signs ``"autolien/event/v1\\n" || JCS(envelope without sig)`` with the
actor's key. Entry 0 is the ``consortium`` genesis: the origin, the operator's
key, the members' keys and the disposal threshold M. The on-disk format is
described in docs/ledger.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LedgerCorruptError, SignatureError
from . import lifecycle as lc
from .jcs import canonicalize
from .merkle import HashName
from .note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteVerifier

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "DISPOSAL_DOMAIN",
    "ENTRIES",
    "EVENT_DOMAIN",
    "FORMAT",
    "ID_MAX",
    "OPERATOR_KEY",
    "TRUNCATED_DIR",
    "TRUNCATIONS",
    "TRUNCATION_DOMAIN",
    "Entry",
    "Member",
    "check_idempotency_key",
    "disposal_signing_bytes",
    "read_config",
    "signing_bytes",
]

FORMAT = "autolien-ledger/v1"
EVENT_DOMAIN = b"autolien/event/v1\n"
DISPOSAL_DOMAIN = b"autolien/disposal/v1\n"
CONFIG = "LEDGER.json"
ENTRIES = "entries.dat"
CHECKPOINTS = "checkpoints.dat"
OPERATOR_KEY = "operator.skey"
TRUNCATIONS = "truncations.dat"
TRUNCATED_DIR = "truncated"
TRUNCATION_DOMAIN = b"autolien/truncation/v1\n"
ID_MAX = 128  # longest idempotency key


def read_config(path: Path) -> dict[str, Any]:
    """LEDGER.json, checked; LedgerCorruptError (with the offset where JSON fails) if damaged."""
    cfg_path = path / CONFIG
    if not cfg_path.exists():
        msg = f"{path} is not an autolien ledger (no {CONFIG})"
        raise FileNotFoundError(msg)
    raw = cfg_path.read_bytes()
    try:
        cfg = json.loads(raw)
    except UnicodeDecodeError as e:
        msg = f"{CONFIG}: not UTF-8 at byte offset {e.start}"
        raise LedgerCorruptError(msg, path=str(cfg_path), offset=e.start) from None
    except json.JSONDecodeError as e:
        offset = len(raw[: e.pos].decode(errors="replace").encode()) if e.pos else 0
        msg = f"{CONFIG}: not valid JSON at byte offset {offset}: {e.msg}"
        raise LedgerCorruptError(msg, path=str(cfg_path), offset=offset) from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        got = cfg.get("format") if isinstance(cfg, dict) else cfg
        msg = f"{CONFIG}: unknown ledger format {got!r}"
        raise LedgerCorruptError(msg, path=str(cfg_path))
    for key in ("origin", "hash", "operator_vkey"):
        if not isinstance(cfg.get(key), str):
            msg = f"{CONFIG}: {key} must be a string"
            raise LedgerCorruptError(msg, path=str(cfg_path))
    if cfg["hash"] not in ("sha256", "keccak256"):
        msg = f"{CONFIG}: unknown hash {cfg['hash']!r}"
        raise LedgerCorruptError(msg, path=str(cfg_path))
    try:
        NoteVerifier.from_vkey(cfg["operator_vkey"])
    except ValueError as e:
        msg = f"{CONFIG}: operator_vkey: {e}"
        raise LedgerCorruptError(msg, path=str(cfg_path)) from None
    return cfg


def _config_mismatch(cfg: Mapping[str, Any], cons: _Consortium) -> str | None:
    """Why LEDGER.json disagrees with the signed consortium entry, if it does."""
    for key, value in (
        ("origin", cons.origin),
        ("hash", cons.hash),
        ("operator_vkey", cons.operator.vkey),
    ):
        if cfg[key] != value:
            return f"{CONFIG}: {key} {cfg[key]!r} is not the consortium entry's {value!r}"
    return None


@dataclass(frozen=True)
class Member:
    """A consortium institution: its event-signing key and, optionally, its witness key."""

    name: str
    vkey: str
    witness_vkey: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "vkey": self.vkey}
        if self.witness_vkey:
            out["witness_vkey"] = self.witness_vkey
        return out


@dataclass(frozen=True)
class Entry:
    seq: int
    event: dict[str, Any]
    leaf_hash: bytes


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        msg = f"{what} must be a base64 string"
        raise SignatureError(msg)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        msg = f"{what} is not valid base64"
        raise SignatureError(msg) from None


def signing_bytes(event: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in event.items() if k != "sig"}
    return EVENT_DOMAIN + canonicalize(body)


def disposal_signing_bytes(request: Mapping[str, Any]) -> bytes:
    return DISPOSAL_DOMAIN + canonicalize(request)


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _truncation_signing_bytes(rec: Mapping[str, Any]) -> bytes:
    return TRUNCATION_DOMAIN + canonicalize({k: v for k, v in rec.items() if k != "sig"})


@dataclass
class _Consortium:
    origin: str
    hash: HashName
    operator: NoteVerifier
    members: dict[str, NoteVerifier]
    witnesses: dict[str, NoteVerifier]
    threshold: int


@dataclass
class _Books:
    """Everything derived from the entries; rebuilt by replay."""

    consortium: _Consortium | None = None
    assets: dict[str, lc.Asset] = field(default_factory=dict)
    active_vin: dict[str, str] = field(default_factory=dict)  # VIN -> code of its live pledge
    ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (actor, id) -> seq


def check_idempotency_key(key: Any) -> str:
    """A client-chosen event id: 1 to 128 printable ASCII characters."""
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= ID_MAX
        or not key.isprintable()
        or not key.isascii()
    ):
        msg = f"an idempotency key is 1 to {ID_MAX} printable ASCII characters, got {key!r}"
        raise ValueError(msg)
    return key


def _same_request(
    ev: Mapping[str, Any], etype: str, code: str | None, actor: str, data: Any
) -> bool:
    # Time is not compared: a retry without an explicit time reads a later clock.
    return canonicalize([ev["type"], ev["asset"], ev["actor"], ev["data"]]) == canonicalize(
        [etype, code, actor, data]
    )


def _check_envelope(ev: Any, seq: int) -> None:
    if not isinstance(ev, dict):
        msg = "entry is not a JSON object"
        raise TypeError(msg)
    keys = set(ev)
    want = {"v", "seq", "type", "asset", "time", "actor", "data", "sig"}
    if keys - {"id"} != want:
        msg = f"entry fields must be {sorted(want)} and optionally id, got {sorted(keys)}"
        raise ValueError(msg)
    if "id" in ev:
        check_idempotency_key(ev["id"])
    if ev["v"] != 1:
        msg = f"unknown entry version {ev['v']!r}"
        raise ValueError(msg)
    if ev["seq"] != seq:
        msg = f"entry seq {ev['seq']!r} does not match its position {seq}"
        raise ValueError(msg)
    if not isinstance(ev["data"], dict):
        msg = "entry data must be an object"
        raise TypeError(msg)
    lc.parse_time(ev["time"])


def _consortium_from(ev: dict[str, Any]) -> _Consortium:
    d = ev["data"]
    members = {}
    witnesses = {}
    for m in d["members"]:
        v = NoteVerifier.from_vkey(m["vkey"])
        if v.name != m["name"] or v.alg != ALG_ED25519:
            msg = f"member {m['name']} must have an Ed25519 (type 0x01) key under its own name"
            raise ValueError(msg)
        if m["name"] in members:
            msg = f"member {m['name']} is listed twice"
            raise ValueError(msg)
        members[m["name"]] = v
        if m.get("witness_vkey"):
            w = NoteVerifier.from_vkey(m["witness_vkey"])
            if w.alg != ALG_COSIGNATURE_V1:
                msg = f"witness key of {m['name']} must be a cosignature (type 0x04) key"
                raise ValueError(msg)
            witnesses[w.name] = w
    threshold = d["threshold"]
    if not isinstance(threshold, int) or not 1 <= threshold <= len(members):
        msg = f"threshold must be between 1 and the {len(members)} members, got {threshold!r}"
        raise ValueError(msg)
    operator = NoteVerifier.from_vkey(d["operator_vkey"])
    if d["hash"] not in ("sha256", "keccak256"):
        msg = f"unknown hash {d['hash']!r}"
        raise ValueError(msg)
    return _Consortium(d["origin"], d["hash"], operator, members, witnesses, threshold)


def _data(data: Any, what: str = "data") -> dict[str, Any]:
    """An event's data: a JSON object (a Mapping), copied."""
    if not isinstance(data, Mapping):
        msg = f"{what} must be a JSON object, got {type(data).__name__}"
        raise TypeError(msg)
    return dict(data)


def _load_event(payload: bytes, *, check_canonical: bool = True) -> dict[str, Any]:
    ev = json.loads(payload)
    if check_canonical and canonicalize(ev) != payload:
        msg = "entry bytes are not in RFC 8785 canonical form"
        raise ValueError(msg)
    return ev  # type: ignore[no-any-return]
