"""The ledger's log: replay of the signed entries into the books (with the
M-of-N disposal authorisation check), and :class:`LedgerLog`, the durable
writer and reader of one ledger directory (entries, checkpoints, operator
truncation records). :class:`~autolien.ledger.assets.AssetLedger` adds the
disposal and auction helpers on top.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
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
from .envelope import (
    CHECKPOINTS,
    CONFIG,
    ENTRIES,
    FORMAT,
    OPERATOR_KEY,
    TRUNCATIONS,
    Entry,
    Member,
    _b64,
    _Books,
    _check_envelope,
    _config_mismatch,
    _Consortium,
    _consortium_from,
    _data,
    _digest,
    _load_event,
    _same_request,
    _truncation_signing_bytes,
    _unb64,
    check_idempotency_key,
    disposal_signing_bytes,
    read_config,
    signing_bytes,
)
from .identity import asset_code, validate_asset_code, validate_vin
from .jcs import canonicalize
from .merkle import HashName, MerkleLog
from .note import Checkpoint, NoteSigner, NoteVerifier, open_note, sign_note
from .storage import DirLock, RecordFile, fsync_dir, scan_records

__all__ = ["LedgerLog", "Replay", "read_truncations", "revoked_checkpoints"]


class Replay:
    """Hands a ledger's replay (the books and events rebuilt from its entries)
    from one reader to the next in one process, so that a run which audits,
    writes and then reports on a ledger replays it once, not three times
    (each replay reads the whole history: its cost grows with the ledger's age).

    What is handed over is keyed by the tree head it was replayed from: the
    entry count and the Merkle root. An opener adopts it only when the files
    it has just read and hashed give the same head under the same LEDGER.json;
    a root names its exact entries (RFC 6962), and the replay is a function
    of the entries alone, so equal heads mean an equal replay. Anything else
    (an entry appended, cut or changed since) is replayed from the files as
    without it. Every check that does not depend on the replay (framing,
    checkpoints, truncations, the audit's signatures) still runs.

    Single use: an open takes what the slot holds, matched or not, and a
    ledger opened with the slot puts its final state back when it closes."""

    def __init__(self) -> None:
        self._held: tuple[dict[str, Any], int, bytes, _Books, list[dict[str, Any]]] | None = None

    @property
    def held(self) -> bool:
        """Whether the slot holds a replay."""
        return self._held is not None

    def put(
        self,
        config: Mapping[str, Any],
        size: int,
        root: bytes,
        books: _Books,
        events: list[dict[str, Any]],
    ) -> None:
        if len(events) != size:
            msg = f"a replay of {size} entries holds {len(events)} events"
            raise ValueError(msg)
        self._held = (dict(config), size, bytes(root), books, events)

    def take(
        self, config: Mapping[str, Any], size: int, root: bytes
    ) -> tuple[_Books, list[dict[str, Any]]] | None:
        """The books and events if they were replayed from this head; the slot
        is empty afterwards either way."""
        held, self._held = self._held, None
        if held is None:
            return None
        h_config, h_size, h_root, books, events = held
        if h_config != dict(config) or h_size != size or h_root != root:
            return None
        return books, events


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


class LedgerLog:
    """A durable consortium ledger in a directory: the log, its replay and its
    checkpoints. Use :class:`~autolien.ledger.assets.AssetLedger`."""

    def __init__(
        self,
        path: Path,
        *,
        operator: NoteSigner | None,
        read_only: bool,
        replay: Replay | None = None,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._replay = replay
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
    ) -> Self:
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
        replay: Replay | None = None,
    ) -> Self:
        """Opens a ledger. Every file is read and checked first (framing, the
        replay, every stored checkpoint's signature, size and root);
        LedgerCorruptError, naming the file and byte offset, leaves them as
        they were. Only then does a writer (which holds the directory lock)
        cut a torn tail, which never holds a complete record.

        ``replay``: a :class:`Replay` slot. Its books and events are adopted
        instead of replaying the entries when they were replayed from the
        head the files give now; ``close`` puts this ledger's back."""
        return cls(Path(path), operator=operator, read_only=read_only, replay=replay)

    def close(self) -> None:
        """Closes the files and releases the lock; safe to call twice. A
        ledger opened with a :class:`Replay` slot puts its replay there."""
        entries, cps, lock = (getattr(self, n, None) for n in ("_entries", "_cps", "_lock"))
        slot, self._replay = getattr(self, "_replay", None), None
        if slot is not None and getattr(self, "_loaded", False):
            slot.put(self.config, self._log.size, self._log.root(), self._books, self._events)
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
        adopted = (
            self._replay.take(self.config, self._log.size, self._log.root())
            if self._replay is not None
            else None
        )
        to_replay = scan.records
        if adopted is not None:
            self._books, self._events = adopted
            to_replay = []  # replayed from these very entries already
        for i, payload in enumerate(to_replay):
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
        self._loaded = True

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
