"""Checking a ledger from outside: the :class:`Witness` that cosigns
consistent checkpoints, :func:`audit` (every file re-checked from its bytes,
every problem reported with its byte offset) and the operator's explicit
:func:`truncate`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .._spawn import main_not_rerun
from ..errors import AutolienError, LedgerCorruptError, SignatureError
from . import lifecycle as lc
from .envelope import (
    CHECKPOINTS,
    CONFIG,
    ENTRIES,
    OPERATOR_KEY,
    TRUNCATED_DIR,
    TRUNCATIONS,
    _b64,
    _Books,
    _check_envelope,
    _config_mismatch,
    _digest,
    _load_event,
    _truncation_signing_bytes,
    _unb64,
    read_config,
    signing_bytes,
)
from .jcs import canonicalize
from .log import Replay, _commit, _validate, read_truncations, revoked_checkpoints
from .merkle import HashName, MerkleLog, verify_consistency
from .note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign_checkpoint,
    open_note,
)
from .storage import DirLock, RecordFile, ScanResult, fsync_dir, scan_bytes, scan_records

__all__ = ["AuditReport", "Witness", "audit", "truncate"]


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
        # an unguarded script that audits (or runs the pipeline) is not run
        # again by each worker as it starts
        with main_not_rerun():
            futures = [
                pool.submit(_first_bad_signature, payloads[i : i + chunk], first_index + i, keys)
                for i in range(0, len(payloads), chunk)
            ]
        found = [r for f in futures if (r := f.result()) is not None]
    return min(found) if found else None


# Worker processes cost about a second to start; the entry replay here runs
# beside them. Measured on two cores: 6,824 entries 1.12-1.44 s alone, 1.04 s
# with two workers; 22,685 entries (10,000 vehicles after 15 days) 4.2-5.9 s
# alone, 3.0-3.6 s with two.
PARALLEL_AUDIT_MIN = 10_000


def audit(
    path: str | os.PathLike[str],
    *,
    verify_signatures: bool = True,
    workers: int | None = None,
    replay: Replay | None = None,
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
    at least ``PARALLEL_AUDIT_MIN`` (10,000) entries.

    ``replay``: a :class:`~autolien.ledger.log.Replay` slot that receives the
    books and events of a ledger that passes, so that a writer opening it
    next does not replay the entries again (the pipeline's pre-run audit).
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
    events: list[dict[str, Any]] = []
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
        events.append(ev)
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
    if replay is not None and not problems:
        # only a ledger that passed every check is handed on
        replay.put(config, log.size, log.root(), books, events)
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
