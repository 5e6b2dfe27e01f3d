"""The consortium asset ledger: one code per vehicle, signed lifecycle events
in a durable RFC 6962 log, M-of-N disposal, the 7-day rule, auctions, signed
and witnessed checkpoints, and audit.

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
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from ..errors import (
    AuthorizationError,
    AutolienError,
    IdempotencyConflictError,
    InvalidTransitionError,
    LedgerCorruptError,
    SignatureError,
)
from . import lifecycle as lc
from .identity import asset_code, validate_asset_code, validate_vin
from .jcs import canonicalize
from .merkle import HashName, MerkleLog, verify_consistency
from .note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign_checkpoint,
    open_note,
    sign_note,
)
from .storage import DirLock, RecordFile, ScanResult, fsync_dir, scan_bytes, scan_records

__all__ = ["AssetLedger", "AuditReport", "Entry", "Member", "Witness", "audit", "truncate"]

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


def _check_authorization(books: _Books, ev: dict[str, Any], asset: lc.Asset | None) -> None:
    cons = books.consortium
    assert cons is not None
    d = ev["data"]
    request = d.get("request")
    approvals = d.get("approvals")
    if not isinstance(request, dict) or not isinstance(approvals, list):
        msg = "disposal_authorized needs data.request (object) and data.approvals (list)"
        raise AuthorizationError(msg)
    if request.get("type") != "disposal_request" or request.get("asset") != ev["asset"]:
        msg = "the request must be a disposal_request for this asset"
        raise AuthorizationError(msg)
    if asset is None or request.get("default_seq") != asset.default_seq:
        msg = "the request must name the asset's current default (default_seq)"
        raise AuthorizationError(msg)
    message = disposal_signing_bytes(request)
    seen: set[str] = set()
    for ap in approvals:
        name = ap.get("member") if isinstance(ap, dict) else None
        if name not in cons.members:
            msg = f"approval from unknown member {name!r}"
            raise AuthorizationError(msg)
        if name in seen:
            msg = f"duplicate approval from {name}"
            raise AuthorizationError(msg)
        seen.add(name)
        if not cons.members[name].verify(message, _unb64(ap.get("sig"), f"signature of {name}")):
            msg = f"the signature of {name} is not over this disposal request"
            raise AuthorizationError(msg)
    if len(seen) < cons.threshold:
        msg = f"disposal needs {cons.threshold} of {len(cons.members)} member approvals, got {len(seen)}"
        raise AuthorizationError(msg)


def _validate(
    books: _Books, ev: dict[str, Any], *, verify_signature: bool, signer_key: bytes | None = None
) -> lc.Asset | _Consortium:
    """Checks one entry against the books; returns the new asset (or consortium)."""
    etype = ev["type"]
    if "id" in ev and (ev["actor"], ev["id"]) in books.ids:
        msg = (
            f"{ev['actor']} already used idempotency key {ev['id']!r} "
            f"(entry {books.ids[ev['actor'], ev['id']]})"
        )
        raise IdempotencyConflictError(msg)
    if ev["seq"] == 0 or etype == "consortium":
        if ev["seq"] != 0 or etype != "consortium" or books.consortium is not None:
            msg = "the consortium entry must be entry 0, and only entry 0"
            raise InvalidTransitionError(msg)
        cons = _consortium_from(ev)
        if ev["actor"] != cons.operator.name or signer_key not in (None, cons.operator.public_key):
            msg = "the consortium entry is signed by the operator"
            raise SignatureError(msg)
        if verify_signature and not cons.operator.verify(
            signing_bytes(ev), _unb64(ev["sig"], "sig")
        ):
            msg = "entry 0 signature does not verify"
            raise SignatureError(msg)
        return cons
    if books.consortium is None:
        msg = "entry 0 must be the consortium entry"
        raise InvalidTransitionError(msg)
    consortium = books.consortium
    actor = ev["actor"]
    if etype == "judicial_disposal_triggered":
        if actor != consortium.operator.name:
            msg = "the 7-day trigger is recorded by the ledger operator"
            raise SignatureError(msg)
        key = consortium.operator
    else:
        if actor not in consortium.members:
            msg = f"actor {actor!r} is not a consortium member"
            raise SignatureError(msg)
        key = consortium.members[actor]
    if (signer_key is not None and signer_key != key.public_key) or (
        verify_signature and not key.verify(signing_bytes(ev), _unb64(ev["sig"], "sig"))
    ):
        msg = f"signature of {actor} on entry {ev['seq']} does not verify"
        raise SignatureError(msg)
    code = ev["asset"]
    if not isinstance(code, str):
        msg = "data entries need an asset code"
        raise TypeError(msg)
    asset = books.assets.get(code)
    if etype == "pledge_registered":
        d = ev["data"]
        vin = d.get("vin")
        if d.get("vin_check") == "overridden":
            validate_vin(vin, check_digit=False)
            if not d.get("override_reason"):
                msg = "a VIN check-digit override needs a reason"
                raise ValueError(msg)
        else:
            validate_vin(vin)
            if d.get("vin_check") != "valid":
                msg = "data.vin_check must be 'valid' or 'overridden'"
                raise ValueError(msg)
        if code != asset_code(vin, d.get("pledge_id", "")):
            msg = "the asset code does not derive from this VIN and pledge_id"
            raise ValueError(msg)
        if vin in books.active_vin:
            raise InvalidTransitionError(
                f"cannot record pledge_registered: VIN {vin} is already pledged as {books.active_vin[vin]}"
            )
    if etype == "disposal_authorized" and asset is not None and asset.state is lc.State.DEFAULTED:
        _check_authorization(books, ev, asset)
    return lc.apply(asset, ev)


_MISSING = object()
Journal = list[tuple[dict[Any, Any], Any, Any]]


def _put(d: dict[Any, Any], key: Any, value: Any, journal: Journal | None) -> None:
    if journal is not None:
        journal.append((d, key, d.get(key, _MISSING)))
    d[key] = value


def _commit(
    books: _Books,
    result: lc.Asset | _Consortium,
    journal: Journal | None = None,
    ev: Mapping[str, Any] | None = None,
) -> None:
    """Applies a validated result; ``journal`` collects what undo needs."""
    if ev is not None and "id" in ev:
        _put(books.ids, (ev["actor"], ev["id"]), ev["seq"], journal)
    if isinstance(result, _Consortium):
        books.consortium = result
        return
    _put(books.assets, result.code, result, journal)
    if result.state in (lc.State.SETTLED, lc.State.RELEASED):
        if books.active_vin.get(result.vin) == result.code:
            if journal is not None:
                journal.append((books.active_vin, result.vin, result.code))
            del books.active_vin[result.vin]
    else:
        _put(books.active_vin, result.vin, result.code, journal)


def _undo(journal: Journal) -> None:
    for d, key, old in reversed(journal):
        if old is _MISSING:
            d.pop(key, None)
        else:
            d[key] = old


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _truncation_signing_bytes(rec: Mapping[str, Any]) -> bytes:
    return TRUNCATION_DOMAIN + canonicalize({k: v for k, v in rec.items() if k != "sig"})


def read_truncations(path: Path, operator: NoteVerifier) -> list[dict[str, Any]]:
    """The operator-signed truncation records; LedgerCorruptError for a bad one."""
    tpath = path / TRUNCATIONS
    scan = scan_records(tpath)
    out = []
    for i, payload in enumerate(scan.records):
        try:
            rec = json.loads(payload)
            ok = (
                isinstance(rec, dict)
                and rec.get("type") == "truncation"
                and operator.verify(_truncation_signing_bytes(rec), _unb64(rec.get("sig"), "sig"))
                and isinstance(rec.get("revoked_checkpoints"), list)
            )
        except (ValueError, TypeError, AutolienError):
            ok = False
        if not ok:
            msg = (
                f"{TRUNCATIONS}: record {i} at byte offset {scan.offsets[i]} is not a "
                "truncation record signed by the operator"
            )
            raise LedgerCorruptError(msg, path=str(tpath), offset=scan.offsets[i], index=i)
        out.append(rec)
    return out


def revoked_checkpoints(truncations: Sequence[Mapping[str, Any]]) -> set[str]:
    """SHA-256 (hex) of every stored checkpoint note an operator truncation revoked."""
    return {d for rec in truncations for d in rec["revoked_checkpoints"]}


DISPOSAL_REQUEST_FIELDS = {
    "type": str,
    "asset": str,
    "default_seq": int,
    "reason": str,
    "requested_at": str,
}


def check_disposal_request(request: Any) -> None:
    """TypeError/ValueError unless ``request`` has the shape of a disposal request."""
    if not isinstance(request, Mapping):
        msg = f"a disposal request is a JSON object, got {type(request).__name__}"
        raise TypeError(msg)
    if set(request) != set(DISPOSAL_REQUEST_FIELDS):
        msg = f"a disposal request has the fields {sorted(DISPOSAL_REQUEST_FIELDS)}, got {sorted(request)}"
        raise ValueError(msg)
    for k, t in DISPOSAL_REQUEST_FIELDS.items():
        if not isinstance(request[k], t) or isinstance(request[k], bool):
            msg = f"disposal request field {k} must be a {t.__name__}"
            raise TypeError(msg)
    if request["type"] != "disposal_request":
        msg = f"not a disposal request (type {request['type']!r})"
        raise ValueError(msg)
    validate_asset_code(request["asset"])
    lc.parse_time(request["requested_at"])


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


class AssetLedger:
    """A durable consortium ledger in a directory. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, *, operator: NoteSigner | None, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self.config = read_config(path)
        if operator is None and (path / OPERATOR_KEY).exists() and not read_only:
            operator = NoteSigner.from_skey((path / OPERATOR_KEY).read_text().strip())
        if operator is not None and operator.vkey != self.config["operator_vkey"]:
            msg = "the operator key does not match the ledger's operator"
            raise SignatureError(msg)
        self._operator = operator
        self._entries: RecordFile | None = None
        self._cps: RecordFile | None = None
        self._checkpoints: list[str] = []
        self._lock: DirLock | None = None if read_only else DirLock(path)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # --- construction -------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        origin: str,
        operator: NoteSigner,
        members: Sequence[Member],
        threshold: int,
        time: datetime,
        hash: HashName = "sha256",
        save_operator_key: bool = True,
    ) -> AssetLedger:
        """Initialises a ledger directory with its consortium genesis entry."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        if (p / CONFIG).exists():
            msg = f"{p} already holds a ledger"
            raise FileExistsError(msg)
        if not members:
            msg = "members must not be empty"
            raise ValueError(msg)
        genesis = {
            "origin": origin,
            "hash": hash,
            "operator_vkey": operator.vkey,
            "members": [m.to_json() for m in members],
            "threshold": threshold,
        }
        # Validate before anything is written.
        _consortium_from({"data": genesis})
        if save_operator_key:
            fd = os.open(p / OPERATOR_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(operator.skey + "\n")
        config = {"format": FORMAT, "origin": origin, "hash": hash, "operator_vkey": operator.vkey}
        tmp = p / (CONFIG + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.rename(p / CONFIG)
        fsync_dir(p)
        led = cls(p, operator=operator, read_only=False)
        led._append([("consortium", None, genesis, operator, time)])
        return led

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        operator: NoteSigner | None = None,
        read_only: bool = False,
    ) -> AssetLedger:
        """Opens a ledger. Every file is read and checked first (framing, the
        replay, every stored checkpoint's signature, size and root);
        LedgerCorruptError, naming the file and byte offset, leaves them as
        they were. Only then does a writer (which holds the directory lock)
        cut a torn tail, which never holds a complete record."""
        return cls(Path(path), operator=operator, read_only=read_only)

    def close(self) -> None:
        """Closes the files and releases the lock; safe to call twice."""
        entries, cps, lock = (getattr(self, n, None) for n in ("_entries", "_cps", "_lock"))
        self._entries = self._cps = None
        self._lock = None
        if entries is not None:
            entries.close()
        if cps is not None:
            cps.close()
        if lock is not None:
            lock.release()

    def __del__(self) -> None:
        # A dropped ledger releases its files and lock instead of leaking them.
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> None:
        entries_path = self.path / ENTRIES
        cps_path = self.path / CHECKPOINTS
        # Everything is read and checked against the signed checkpoints before
        # a single byte is cut: a writer refuses rather than destroys.
        scan = scan_records(entries_path)
        cp_scan = scan_records(cps_path)
        revoked = revoked_checkpoints(read_truncations(self.path, self._operator_verifier))
        self.recovered_torn_bytes = scan.torn_bytes
        self._log = MerkleLog(self.config["hash"])
        self._log.extend(scan.records)
        self._books = _Books()
        self._events: list[dict[str, Any]] = []
        for i, payload in enumerate(scan.records):
            try:
                # Open trusts framing CRCs and the signed checkpoint's root;
                # audit() also re-checks canonical form and every signature.
                ev = _load_event(payload, check_canonical=False)
                _check_envelope(ev, i)
                result = _validate(self._books, ev, verify_signature=False)
            except (ValueError, AutolienError, KeyError, TypeError) as e:
                msg = f"{ENTRIES}: entry {i} at byte offset {scan.offsets[i]} does not replay: {e}"
                raise LedgerCorruptError(
                    msg, path=str(entries_path), offset=scan.offsets[i], index=i
                ) from e
            _commit(self._books, result, ev=ev)
            self._events.append(ev)
        if self._books.consortium is not None:
            mismatch = _config_mismatch(self.config, self._books.consortium)
            if mismatch:
                raise LedgerCorruptError(mismatch, path=str(self.path / CONFIG))
        self._checkpoints = []
        self.revoked_checkpoints = 0
        for i, payload in enumerate(cp_scan.records):
            off = cp_scan.offsets[i]
            where = f"{CHECKPOINTS}: checkpoint {i} at byte offset {off}"
            try:
                note = payload.decode()
                cp = Checkpoint.parse(open_note(note, [self._operator_verifier]).text)
            except (ValueError, AutolienError) as e:
                raise LedgerCorruptError(
                    f"{where} does not verify: {e}", path=str(cps_path), offset=off, index=i
                ) from e
            if _digest(payload) in revoked:
                self.revoked_checkpoints += 1
                continue
            problem = None
            if cp.origin != self.origin:
                problem = f"has origin {cp.origin!r}, not the ledger's"
            elif cp.size > self._log.size:
                problem = (
                    f"covers {cp.size} entries but only {self._log.size} are stored "
                    f"(they end at byte offset {scan.end} of {ENTRIES}): acknowledged entries are missing"
                )
            elif self._log.root(cp.size) != cp.root:
                problem = f"is not reproduced by the first {cp.size} entries"
            if problem:
                raise LedgerCorruptError(
                    f"{where} {problem}", path=str(cps_path), offset=off, index=i
                )
            self._checkpoints.append(note)
        if not self.read_only:
            self._entries = RecordFile(entries_path)
            if scan.torn_bytes:
                self._entries.truncate(scan.end)
            self._cps = RecordFile(cps_path)
            if cp_scan.torn_bytes:
                self._cps.truncate(cp_scan.end)

    # --- properties ---------------------------------------------------------

    @property
    def _operator_verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.config["operator_vkey"])

    @property
    def _cons(self) -> _Consortium:
        assert self._books.consortium is not None
        return self._books.consortium

    @property
    def size(self) -> int:
        return self._log.size

    @property
    def origin(self) -> str:
        return str(self.config["origin"])

    @property
    def threshold(self) -> int:
        return self._cons.threshold

    @property
    def members(self) -> list[str]:
        return list(self._cons.members)

    def root(self, size: int | None = None) -> bytes:
        return self._log.root(size)

    def entry(self, seq: int) -> dict[str, Any]:
        if not 0 <= seq < len(self._events):
            msg = f"seq {seq} out of range for {len(self._events)} entries"
            raise IndexError(msg)
        return self._events[seq]

    def entries(self) -> Iterator[dict[str, Any]]:
        return iter(self._events)

    def leaf_hash(self, seq: int) -> bytes:
        return self._log.leaf_hash(seq)

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        return self._log.inclusion_proof(seq, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return self._log.consistency_proof(size1, size2)

    def asset(self, code: str) -> lc.Asset:
        """The current state of an asset; KeyError if unknown."""
        c = validate_asset_code(code)
        if c not in self._books.assets:
            msg = f"unknown asset code {c}"
            raise KeyError(msg)
        return self._books.assets[c]

    def history(self, code: str) -> list[dict[str, Any]]:
        """Every entry of an asset, oldest first: the code resolves to this."""
        return [self._events[s] for s in self.asset(code).seqs]

    def assets(self) -> list[str]:
        return list(self._books.assets)

    def code_for_vin(self, vin: str) -> str | None:
        """The code of the VIN's live pledge, if any."""
        return self._books.active_vin.get(validate_vin(vin, check_digit=False))

    # --- writing ------------------------------------------------------------

    def _require_writer(self) -> RecordFile:
        if self._entries is None:
            msg = "the ledger is open read-only"
            raise PermissionError(msg)
        return self._entries

    def _existing(self, key: str | None, actor: str) -> Entry | None:
        """The stored entry that ``actor`` recorded under idempotency key ``key``, if any."""
        if key is None:
            return None
        seq = self._books.ids.get((actor, check_idempotency_key(key)))
        if seq is None or seq >= self.size:
            return None
        return Entry(seq, self._events[seq], self._log.leaf_hash(seq))

    def _append(self, drafts: Sequence[Sequence[Any]]) -> list[Entry]:
        """Signs, validates (all or nothing), writes with one fsync, then commits.

        A draft is ``(etype, code, data, signer, time[, idempotency_key])``.
        A draft whose key ``signer`` already used for the same type, asset and
        data is not recorded again: its stored entry is returned in its place.
        """
        writer = self._require_writer()
        # Validate and apply in place, journalling each change, so a rejected
        # batch is undone exactly and the books are never copied.
        books = self._books
        had_consortium = books.consortium
        journal: Journal = []
        events: list[dict[str, Any]] = []
        payloads = []
        out: list[Entry | int] = []  # an existing entry, or the index of a new event
        try:
            queue = [tuple(d) + (None,) * (6 - len(d)) for d in drafts]
            while queue:
                etype, code, data, signer, when, key = queue.pop(0)
                if key is not None:
                    seq = books.ids.get((signer.name, check_idempotency_key(key)))
                    if seq is not None:
                        if seq >= self.size:
                            msg = f"idempotency key {key!r} is used twice in one batch"
                            raise IdempotencyConflictError(msg)
                        prev = self._events[seq]
                        if not _same_request(prev, etype, code, signer.name, data):
                            msg = (
                                f"{signer.name} already used idempotency key {key!r} for entry "
                                f"{seq} ({prev['type']} of {prev['asset']}), with other content"
                            )
                            raise IdempotencyConflictError(msg)
                        out.append(Entry(seq, prev, self._log.leaf_hash(seq)))
                        continue
                # A member event after an asset's 7-day deadline brings the
                # trigger in first, exactly as tick() at the deadline would.
                if code is not None and etype not in (
                    "judicial_disposal_triggered",
                    "pledge_registered",
                ):
                    current = books.assets.get(code)
                    deadline = lc.trigger_deadline(current) if current else None
                    if deadline is not None and deadline <= when:
                        queue.insert(0, (etype, code, data, signer, when, key))
                        (trigger,) = self._trigger_drafts([(deadline, code)])
                        etype, code, data, signer, when, key = trigger
                seq = self.size + len(events)
                ev: dict[str, Any] = {
                    "v": 1,
                    "seq": seq,
                    "type": etype,
                    "asset": code,
                    "time": lc.format_time(when),
                    "actor": signer.name,
                    "data": data,
                }
                if key is not None:
                    ev["id"] = key
                ev["sig"] = _b64(signer.sign(signing_bytes(ev)))
                payload = canonicalize(ev)  # also rejects values JSON cannot hold
                _check_envelope(ev, seq)
                # We just signed, so the check is that the signer's key is the
                # one registered for its name (cheaper than verifying).
                result = _validate(books, ev, verify_signature=False, signer_key=signer.public_key)
                _commit(books, result, journal, ev)
                out.append(len(events))
                events.append(ev)
                payloads.append(payload)
            writer.append(payloads)
        except BaseException:
            _undo(journal)
            books.consortium = had_consortium
            raise
        self._log.extend(payloads)
        self._events.extend(events)
        return [
            e
            if isinstance(e, Entry)
            else Entry(events[e]["seq"], events[e], self._log.leaf_hash(events[e]["seq"]))
            for e in out
        ]

    def _due_triggers(
        self, now: datetime, codes: Sequence[str] | None = None
    ) -> list[tuple[datetime, str]]:
        due = []
        for code in codes if codes is not None else self._books.assets:
            a = self._books.assets.get(code)
            d = lc.trigger_deadline(a) if a else None
            if d is not None and d <= now:
                due.append((d, code))
        return sorted(due)

    def _trigger_drafts(self, due: list[tuple[datetime, str]]) -> list[Any]:
        if due and self._operator is None:
            msg = "the operator key is needed to record the 7-day disposal trigger"
            raise PermissionError(msg)
        assert self._operator is not None or not due
        return [
            (
                "judicial_disposal_triggered",
                code,
                {"reason": "no disposal action for 7 days"},
                self._operator,
                d,
                None,
            )
            for d, code in due
        ]

    def record(
        self,
        etype: str,
        code: str,
        data: Mapping[str, Any],
        *,
        actor: NoteSigner,
        time: datetime,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Records one lifecycle event signed by ``actor`` (a member's key).

        If the asset's 7-day disposal deadline passed before ``time``, the
        trigger is recorded first, as :meth:`tick` would have.

        ``idempotency_key`` (chosen by the caller, unique per actor) makes a
        retry safe: if ``actor`` already recorded this key with the same type,
        asset and data, that entry is returned and nothing is appended; with
        other content, IdempotencyConflictError. The time is not compared.
        """
        if etype not in lc.MEMBER_EVENT_TYPES or etype == "pledge_registered":
            msg = f"etype must be one of {lc.MEMBER_EVENT_TYPES[1:]}, got {etype!r}"
            raise ValueError(msg)
        c = validate_asset_code(code)
        return self._append([(etype, c, _data(data), actor, time, idempotency_key)])[-1]

    def record_many(self, events: Sequence[Sequence[Any]]) -> list[Entry]:
        """Records ``(etype, code, data, actor, time[, idempotency_key])`` events as one batch.

        All or nothing: if any event is rejected, none is written. The batch
        costs one fsync, which is what makes bulk loading fast. Due 7-day
        triggers are inserted where they fall, as in :meth:`record`. An event
        whose idempotency key was already recorded (see :meth:`record`) is not
        written again; its stored entry takes its place in the result.
        """
        drafts = []
        for i, ev in enumerate(events):
            if len(ev) not in (5, 6):
                msg = f"events[{i}]: want (etype, code, data, actor, time[, idempotency_key])"
                raise ValueError(msg)
            etype, code, data, actor, time = ev[:5]
            if etype not in lc.MEMBER_EVENT_TYPES or etype == "pledge_registered":
                msg = (
                    f"events[{i}]: etype must be one of {lc.MEMBER_EVENT_TYPES[1:]}, got {etype!r}"
                )
                raise ValueError(msg)
            key = ev[5] if len(ev) == 6 else None
            drafts.append((etype, validate_asset_code(code), _data(data), actor, time, key))
        return self._append(drafts)

    def register_pledge(
        self,
        vin: str,
        pledge_id: str,
        *,
        actor: NoteSigner,
        time: datetime,
        loan_amount_minor: int,
        currency: str = "CNY",
        lender: str | None = None,
        override_check_digit: str | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Registers a pledge and returns its entry; the asset code is ``entry.event["asset"]``.

        A VIN with a bad check digit is rejected (InvalidVINError) unless
        ``override_check_digit`` gives a reason, which is recorded in the entry.
        """
        if override_check_digit:
            v = validate_vin(vin, check_digit=False)
            check = {"vin_check": "overridden", "override_reason": override_check_digit}
        else:
            v = validate_vin(vin)
            check = {"vin_check": "valid"}
        data = {
            "vin": v,
            "pledge_id": pledge_id,
            "loan_amount_minor": loan_amount_minor,
            "currency": currency,
            "lender": lender or actor.name,
            **check,
        }
        code = asset_code(v, pledge_id)
        return self._append([("pledge_registered", code, data, actor, time, idempotency_key)])[0]

    def disposal_request(self, code: str, *, reason: str, time: datetime) -> dict[str, Any]:
        """The canonical request that members sign to authorise a disposal."""
        a = self.asset(code)
        if a.default_seq is None:
            raise InvalidTransitionError(f"asset {a.code} has no declared default to dispose of")
        return {
            "type": "disposal_request",
            "asset": a.code,
            "default_seq": a.default_seq,
            "reason": reason,
            "requested_at": lc.format_time(time),
        }

    @staticmethod
    def approve_disposal(request: Mapping[str, Any], member: NoteSigner) -> dict[str, str]:
        """One member's approval: its Ed25519 signature over the canonical request.

        Only a disposal request (as :meth:`disposal_request` makes it) is
        signed; anything else raises TypeError or ValueError.
        """
        check_disposal_request(request)
        return {"member": member.name, "sig": _b64(member.sign(disposal_signing_bytes(request)))}

    def authorize_disposal(
        self,
        code: str,
        request: Mapping[str, Any],
        approvals: Sequence[Mapping[str, str]],
        *,
        actor: NoteSigner,
        time: datetime,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Records ``disposal_authorized`` if M distinct members signed this request."""
        aps = [_data(a, f"approvals[{i}]") for i, a in enumerate(approvals)]
        data = {"request": _data(request, "request"), "approvals": aps}
        return self.record(
            "disposal_authorized",
            code,
            data,
            actor=actor,
            time=time,
            idempotency_key=idempotency_key,
        )

    def open_auction(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        closes_at: datetime,
        kind: str = "ascending",
        reserve_ratio_ppm: int = 1_000_000,
        min_increment_minor: int = 0,
        auction_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Opens an auction; the reserve is the latest valuation x reserve_ratio_ppm / 1e6."""
        if done := self._retried(idempotency_key, actor, "auction_opened", code):
            return done
        a = self.asset(code)
        if a.valuation_minor is None:
            raise InvalidTransitionError(f"asset {a.code} has no valuation to set a reserve from")
        data = {
            "auction_id": auction_id or f"{a.code}-A{len(a.auctions) + 1}",
            "kind": kind,
            "reserve_ratio_ppm": reserve_ratio_ppm,
            "reserve_minor": a.valuation_minor * reserve_ratio_ppm // 1_000_000,
            "min_increment_minor": min_increment_minor,
            "closes_at": lc.format_time(closes_at),
        }
        return self.record(
            "auction_opened", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def place_bid(
        self,
        code: str,
        bidder: str,
        *,
        actor: NoteSigner,
        time: datetime,
        amount_minor: int | None = None,
        commitment: str | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """A bid: an amount (ascending) or a commitment (sealed, see lifecycle.bid_commitment)."""
        au = self.asset(code).auction
        data: dict[str, Any] = {"auction_id": au.auction_id if au else "", "bidder": bidder}
        if commitment is not None:
            data["commitment"] = commitment
        if amount_minor is not None:
            data["amount_minor"] = amount_minor
        return self.record(
            "bid_placed", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def close_auction(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        reveals: Sequence[Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
    ) -> Entry:
        """Closes the auction; for sealed bids, ``reveals`` opens the commitments."""
        if done := self._retried(idempotency_key, actor, "auction_closed", code):
            return done
        a = self.asset(code)
        au = a.auction
        if au is None or a.state is not lc.State.AUCTION_OPEN:
            raise InvalidTransitionError(
                f"cannot record auction_closed for asset {a.code}: no auction is open"
            )
        data: dict[str, Any] = {"auction_id": au.auction_id}
        if au.kind == "sealed":
            data["reveals"] = [dict(r) for r in reveals]
        winner, price = lc.auction_result(a, au, data)
        data["winner"] = winner
        data["price_minor"] = price
        return self.record(
            "auction_closed", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def settle(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        idempotency_key: str | None = None,
    ) -> Entry:
        if done := self._retried(idempotency_key, actor, "settled", code):
            return done
        au = self.asset(code).auction
        data = {"buyer": au.winner if au else None, "amount_minor": au.price_minor if au else None}
        return self.record(
            "settled", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def _retried(self, key: str | None, actor: NoteSigner, etype: str, code: str) -> Entry | None:
        """For helpers whose data derives from the asset's state (which the first
        call changed): a retry is recognised by key, type and asset alone."""
        e = self._existing(key, actor.name)
        if e is None:
            return None
        if e.event["type"] != etype or e.event["asset"] != validate_asset_code(code):
            msg = (
                f"{actor.name} already used idempotency key {key!r} for entry {e.seq} "
                f"({e.event['type']} of {e.event['asset']})"
            )
            raise IdempotencyConflictError(msg)
        return e

    def tick(self, now: datetime) -> list[Entry]:
        """Records every 7-day judicial-disposal trigger due by ``now``.

        Each trigger's time is its deadline (last disposal action + 7 days),
        not ``now``, so the log does not depend on when tick runs.
        """
        due = self._due_triggers(now)
        return self._append(self._trigger_drafts(due)) if due else []

    def disposal_report(self, code: str) -> dict[str, Any]:
        """Reserve, price, premium over reserve and the disposal cycle time."""
        a = self.asset(code)
        au = a.auction
        out: dict[str, Any] = {"asset": a.code, "state": a.state.value}
        if au is not None:
            out.update(
                auction_id=au.auction_id,
                kind=au.kind,
                reserve_minor=au.reserve_minor,
                winner=au.winner,
                price_minor=au.price_minor,
            )
            if au.price_minor is not None and au.reserve_minor:
                out["premium_over_reserve"] = (au.price_minor - au.reserve_minor) / au.reserve_minor
        end = a.settled_time or (au.closed_at if au else None)
        if a.default_time is not None and end is not None:
            out["cycle_time_days"] = (end - a.default_time) / timedelta(days=1)
        return out

    # --- checkpoints --------------------------------------------------------

    def checkpoint(self) -> str:
        """Signs and stores a checkpoint of the current tree; returns the note."""
        if self._operator is None:
            msg = "the operator key is needed to sign checkpoints"
            raise PermissionError(msg)
        assert self._cps is not None
        body = Checkpoint(self.origin, self.size, self.root()).text()
        note = sign_note(body, [self._operator])
        self._cps.append([note.encode()])
        self._checkpoints.append(note)
        return note

    def checkpoints(self) -> list[str]:
        """Stored checkpoint notes, oldest first (a cosigned note follows its original)."""
        return list(self._checkpoints)

    def add_cosignature(self, note: str, cosignature_line: str) -> str:
        """Appends a witness cosignature line to a stored checkpoint note."""
        if self._cps is None:
            msg = "the ledger is open read-only"
            raise PermissionError(msg)
        if note not in self._checkpoints:
            msg = "that checkpoint is not stored here"
            raise ValueError(msg)
        updated = note + cosignature_line
        open_note(updated, [self._operator_verifier, *self._cons.witnesses.values()])
        self._cps.append([updated.encode()])
        self._checkpoints.append(updated)
        return updated

    @property
    def verifiers(self) -> list[NoteVerifier]:
        return [self._operator_verifier, *self._cons.witnesses.values()]


class Witness:
    """A member acting as witness: it cosigns a checkpoint only if the log is
    consistent with the last checkpoint it saw (c2sp.org/tlog-witness)."""

    def __init__(
        self, signer: NoteSigner, log_vkey: str, origin: str, *, hash: HashName = "sha256"
    ) -> None:
        if signer.alg != ALG_COSIGNATURE_V1:
            msg = "a witness signs with a type 0x04 (cosignature) key"
            raise ValueError(msg)
        self.signer = signer
        self.log = NoteVerifier.from_vkey(log_vkey)
        self.origin = origin
        self.hash: HashName = hash
        self.size = 0
        self.root: bytes | None = None

    def cosign(self, note: str, proof: Sequence[bytes], *, timestamp: int) -> str:
        """Verifies the note and the consistency proof, then returns a cosignature line."""
        text = open_note(note, [self.log]).text
        cp = Checkpoint.parse(text)
        if cp.origin != self.origin:
            msg = f"checkpoint origin {cp.origin!r} is not {self.origin!r}"
            raise SignatureError(msg)
        if cp.size < self.size:
            msg = f"checkpoint size {cp.size} is smaller than the {self.size} already witnessed"
            raise SignatureError(msg)
        if self.root is not None and self.size > 0:
            if cp.size == self.size:
                ok = cp.root == self.root and not proof
            else:
                ok = verify_consistency(
                    self.size, cp.size, list(proof), self.root, cp.root, hash=self.hash
                )
            if not ok:
                msg = f"checkpoint at size {cp.size} is not consistent with the witnessed size {self.size}"
                raise SignatureError(msg)
        self.size, self.root = cp.size, cp.root
        return cosign_checkpoint(text, self.signer, timestamp)


@dataclass
class AuditReport:
    """What :func:`audit` found. ``first_bad`` (file, index, offset, reason) is
    the first of ``problems``; ``ok`` is False exactly when there is one."""

    ok: bool
    entries: int
    root: str
    checkpoints: int
    cosignatures: int
    torn_tail_bytes: int
    first_bad: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    truncations: list[dict[str, Any]] = field(default_factory=list)
    revoked_checkpoints: int = 0

    @property
    def reason(self) -> str | None:
        return None if self.first_bad is None else str(self.first_bad["reason"])

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "entries": self.entries,
            "root": self.root,
            "checkpoints": self.checkpoints,
            "cosignatures": self.cosignatures,
            "torn_tail_bytes": self.torn_tail_bytes,
            "first_bad": self.first_bad,
            "problems": self.problems,
            "truncations": self.truncations,
            "revoked_checkpoints": self.revoked_checkpoints,
        }


def _consistent(log: MerkleLog, old: Checkpoint, new: Checkpoint, hash: HashName) -> bool:
    if new.size < old.size:
        return False
    proof = log.consistency_proof(old.size, new.size)
    return verify_consistency(old.size, new.size, proof, old.root, new.root, hash=hash)


def _first_bad_signature(
    payloads: list[bytes], start: int, keys: dict[str, bytes]
) -> tuple[int, str] | None:
    """Checks entry signatures in [start, start + len(payloads)); runs in a worker."""
    verifiers = {name: NoteVerifier(name, b"", pub) for name, pub in keys.items()}
    for i, payload in enumerate(payloads):
        ev = json.loads(payload)
        v = verifiers.get(ev.get("actor"))
        if v is None:
            continue  # the replay reports unknown actors
        try:
            sig = _unb64(ev.get("sig"), "sig")
        except SignatureError as e:
            return start + i, str(e)
        if not v.verify(signing_bytes(ev), sig):
            return start + i, f"signature of {v.name} on entry {start + i} does not verify"
    return None


def _parallel_signature_check(
    payloads: list[bytes], first_index: int, keys: dict[str, bytes], workers: int
) -> tuple[int, str] | None:
    # Ed25519 verification holds the GIL, so this scales with processes. They
    # are spawned, not forked: a fork would copy the core's thread pool state.
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    chunk = max(1, -(-len(payloads) // (workers * 4)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_first_bad_signature, payloads[i : i + chunk], first_index + i, keys)
            for i in range(0, len(payloads), chunk)
        ]
        found = [r for f in futures if (r := f.result()) is not None]
    return min(found) if found else None


PARALLEL_AUDIT_MIN = 50_000


def audit(
    path: str | os.PathLike[str], *, verify_signatures: bool = True, workers: int | None = None
) -> AuditReport:
    """Re-checks a ledger directory from its bytes alone, without the lock.

    LEDGER.json against the signed consortium entry. Every entry: framing and
    checksum, canonical form, position, signature, authorisation and
    lifecycle replay. Then every leaf and the root, every stored checkpoint's
    checksum, signatures, origin and root, and consistency between
    consecutive checkpoints; operator truncations are verified and listed.
    Never raises for damaged data: each problem is reported with its file,
    byte offset and reason, the first as ``first_bad``. Entry signatures are
    checked on ``workers`` processes (default: one per core) when the log has
    at least 50,000 entries.
    """
    p = Path(path)
    problems: list[dict[str, Any]] = []

    def bad(file: str, index: int | None, offset: int | None, reason: str) -> None:
        problems.append({"file": file, "index": index, "offset": offset, "reason": reason})

    def report(log: MerkleLog | None = None, torn: int = 0, **kw: Any) -> AuditReport:
        return AuditReport(
            ok=not problems,
            entries=log.size if log else 0,
            root=log.root().hex() if log else "",
            checkpoints=kw.get("checkpoints", 0),
            cosignatures=kw.get("cosignatures", 0),
            torn_tail_bytes=torn,
            first_bad=problems[0] if problems else None,
            problems=problems,
            truncations=kw.get("truncations", []),
            revoked_checkpoints=kw.get("revoked", 0),
        )

    try:
        config = read_config(p)
    except LedgerCorruptError as e:
        bad(CONFIG, None, e.offset, str(e))
        return report()
    operator = NoteVerifier.from_vkey(config["operator_vkey"])
    try:
        scan = scan_records(p / ENTRIES)
    except LedgerCorruptError as e:
        bad(ENTRIES, e.index, e.offset, str(e))
        return report()
    log = MerkleLog(config["hash"])
    log.extend(scan.records)
    n_workers = workers or os.cpu_count() or 1
    parallel = verify_signatures and n_workers > 1 and len(scan.records) >= PARALLEL_AUDIT_MIN
    books = _Books()
    entry_bad: dict[str, Any] | None = None
    for i, payload in enumerate(scan.records):
        try:
            ev = _load_event(payload)
            _check_envelope(ev, i)
            # Entry 0 is always checked here: its keys are needed for the rest.
            check_sig = verify_signatures and (not parallel or i == 0)
            result = _validate(books, ev, verify_signature=check_sig)
        except (ValueError, AutolienError, KeyError, TypeError) as e:
            entry_bad = {"index": i, "reason": f"{type(e).__name__}: {e}"}
            break
        _commit(books, result, ev=ev)
    if parallel and books.consortium is not None:
        cons = books.consortium
        keys = {name: v.public_key for name, v in cons.members.items()}
        keys[cons.operator.name] = cons.operator.public_key
        limit = int(entry_bad["index"]) if entry_bad else len(scan.records)
        bad_sig = _parallel_signature_check(list(scan.records[1:limit]), 1, keys, n_workers)
        if bad_sig is not None:
            entry_bad = {"index": bad_sig[0], "reason": f"SignatureError: {bad_sig[1]}"}
    if entry_bad is not None:
        i = entry_bad["index"]
        off = scan.offsets[i]
        bad(ENTRIES, i, off, f"{ENTRIES}: entry {i} at byte offset {off}: {entry_bad['reason']}")
    if books.consortium is not None:
        mismatch = _config_mismatch(config, books.consortium)
        if mismatch:
            bad(CONFIG, None, None, mismatch)
    elif scan.records == [] and entry_bad is None:
        bad(ENTRIES, 0, 0, f"{ENTRIES}: no consortium entry")
    try:
        truncations = read_truncations(p, operator)
    except LedgerCorruptError as e:
        bad(TRUNCATIONS, e.index, e.offset, str(e))
        truncations = []
    revoked = revoked_checkpoints(truncations)
    verifiers = [operator, *(books.consortium.witnesses.values() if books.consortium else [])]
    n_cp = n_cosig = n_revoked = 0
    prev: Checkpoint | None = None
    try:
        cp_scan = scan_records(p / CHECKPOINTS)
    except LedgerCorruptError as e:
        bad(CHECKPOINTS, e.index, e.offset, str(e))
        cp_scan = ScanResult([], [], 0, 0)
    for i, payload in enumerate(cp_scan.records):
        off = cp_scan.offsets[i]
        if _digest(payload) in revoked:
            n_revoked += 1
            continue
        try:
            opened = open_note(payload.decode(), verifiers)
            cp = Checkpoint.parse(opened.text)
            if cp.origin != config["origin"]:
                raise SignatureError(f"checkpoint origin {cp.origin!r} is not the ledger's")
            if cp.size > log.size:
                raise SignatureError(
                    f"checkpoint covers {cp.size} entries but only {log.size} are stored "
                    f"(they end at byte offset {scan.end} of {ENTRIES}): acknowledged entries are missing"
                )
            if log.root(cp.size) != cp.root:
                raise SignatureError(f"checkpoint at size {cp.size} does not match the entries")
            if (
                prev is not None
                and cp.size != prev.size
                and not _consistent(log, prev, cp, config["hash"])
            ):
                msg = f"checkpoints at sizes {prev.size} and {cp.size} are not consistent"
                raise SignatureError(msg)
        except (ValueError, AutolienError) as e:
            bad(CHECKPOINTS, i, off, f"{CHECKPOINTS}: checkpoint {i} at byte offset {off}: {e}")
            break
        n_cp += 1
        n_cosig += sum(1 for s in opened.signatures if s.verified and s.name != operator.name)
        prev = cp
    summary = [
        {
            k: rec.get(k)
            for k in (
                "file",
                "time",
                "reason",
                "kept_records",
                "kept_bytes",
                "dropped_bytes",
                "dropped_sha256",
                "saved_as",
            )
        }
        | {"revoked_checkpoints": len(rec["revoked_checkpoints"])}
        for rec in truncations
    ]
    return report(
        log,
        scan.torn_bytes + cp_scan.torn_bytes,
        checkpoints=n_cp,
        cosignatures=n_cosig,
        truncations=summary,
        revoked=n_revoked,
    )


def _valid_prefix(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each intact record before the first damaged one."""
    try:
        scan = scan_bytes(data)
    except LedgerCorruptError as e:
        scan = scan_bytes(data[: e.offset or 0])
    return [(off, off + 8 + len(rec)) for off, rec in zip(scan.offsets, scan.records, strict=True)]


def truncate(
    path: str | os.PathLike[str],
    *,
    file: str = ENTRIES,
    keep: int,
    reason: str,
    operator: NoteSigner | None = None,
    time: datetime,
) -> dict[str, Any]:
    """The operator's explicit cut: keeps the first ``keep`` records of
    ``file`` (entries.dat or checkpoints.dat) and drops the rest.

    Nothing is destroyed silently: the dropped bytes are saved under
    ``truncated/``, and an operator-signed record of what was dropped and why
    is appended to ``truncations.dat`` before the file is cut. Stored
    checkpoints that covered dropped entries are listed there as revoked;
    :func:`audit` reports every truncation. Works on a ledger that no longer
    opens, which is what it is for. Returns the truncation record.
    """
    p = Path(path)
    if file not in (ENTRIES, CHECKPOINTS):
        msg = f"file must be {ENTRIES} or {CHECKPOINTS}, got {file!r}"
        raise ValueError(msg)
    if not reason or not reason.strip():
        msg = "a truncation needs a reason"
        raise ValueError(msg)
    if keep < (1 if file == ENTRIES else 0):
        msg = f"keep must be at least {1 if file == ENTRIES else 0} for {file}, got {keep}"
        raise ValueError(msg)
    config = read_config(p)
    if operator is None:
        if not (p / OPERATOR_KEY).exists():
            msg = "the operator key is needed to sign a truncation record"
            raise PermissionError(msg)
        operator = NoteSigner.from_skey((p / OPERATOR_KEY).read_text().strip())
    if operator.vkey != config["operator_vkey"]:
        msg = "the operator key does not match the ledger's operator"
        raise SignatureError(msg)
    lock = DirLock(p)
    try:
        target = p / file
        data = target.read_bytes() if target.exists() else b""
        good = _valid_prefix(data)
        if keep > len(good):
            where = good[-1][1] if good else 0
            msg = (
                f"{file} has only {len(good)} intact records before byte offset {where}; "
                f"cannot keep {keep}"
            )
            raise ValueError(msg)
        cut = good[keep - 1][1] if keep else 0
        if cut == len(data):
            msg = f"{file} has exactly {keep} records: nothing to truncate"
            raise ValueError(msg)
        dropped = data[cut:]
        digest = _digest(dropped)
        revoked: list[str] = []
        if file == ENTRIES:
            cps = p / CHECKPOINTS
            cp_data = cps.read_bytes() if cps.exists() else b""
            for start, end in _valid_prefix(cp_data):
                note = cp_data[start + 4 : end - 4]
                with contextlib.suppress(ValueError):
                    text = note.decode().split("\n\n", 1)[0] + "\n"
                    if Checkpoint.parse(text).size > keep:
                        revoked.append(_digest(note))
        saved = Path(TRUNCATED_DIR) / f"{file}.{cut}.{digest[:16]}"
        (p / TRUNCATED_DIR).mkdir(exist_ok=True)
        with open(p / saved, "wb") as f:
            f.write(dropped)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(p / TRUNCATED_DIR)
        rec: dict[str, Any] = {
            "v": 1,
            "type": "truncation",
            "file": file,
            "time": lc.format_time(time),
            "reason": reason,
            "actor": operator.name,
            "kept_records": keep,
            "kept_bytes": cut,
            "dropped_bytes": len(dropped),
            "dropped_sha256": digest,
            "saved_as": str(saved),
            "revoked_checkpoints": revoked,
        }
        rec["sig"] = _b64(operator.sign(_truncation_signing_bytes(rec)))
        tpath = p / TRUNCATIONS
        tscan = scan_records(tpath)
        log_file = RecordFile(tpath)
        try:
            if tscan.torn_bytes:
                log_file.truncate(tscan.end)
            # The record is durable before anything is cut.
            log_file.append([canonicalize(rec)])
        finally:
            log_file.close()
        fd = os.open(target, os.O_RDWR)
        try:
            os.ftruncate(fd, cut)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        lock.release()
    return rec
