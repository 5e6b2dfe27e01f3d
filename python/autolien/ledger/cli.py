"""``autolien ledger ...``: the asset ledger from the shell. Output is JSON.

Typical session::

    autolien ledger keygen bank-a.example > bank-a.json        # each member, once
    autolien ledger init LEDGER --origin example.com/pledges \\
        --member bank-a.example=<vkey> --member ... --threshold 3
    autolien ledger register LEDGER --vin LSVAU218XN2183294 --pledge-id P-1 \\
        --loan-amount-minor 10000000 --key bank-a.skey
    autolien ledger event LEDGER --asset AL... --type default_declared \\
        --data '{"outstanding_minor": 9000000}' --key bank-a.skey
    autolien ledger request-disposal LEDGER --asset AL... --reason default > req.json
    autolien ledger approve --request req.json --key bank-b.skey > b.json   # M members
    autolien ledger authorize-disposal LEDGER --asset AL... --request req.json \\
        --approval b.json --approval c.json --approval d.json --key bank-a.skey
    autolien ledger tick LEDGER
    autolien ledger checkpoint LEDGER
    autolien ledger prove LEDGER --seq 5 > proof.json
    autolien ledger verify --proof proof.json --vkey <operator vkey>
    autolien ledger audit LEDGER

Exit status:
  0  success.
  1  an integrity problem: `audit` or `verify` found one (their JSON report,
     on stdout, has "ok": false and a "reason"), or a command refused a ledger
     whose files fail their checks (LedgerCorruptError, naming the file and
     byte offset, as JSON on stderr).
  2  usage: bad arguments or malformed input (JSON that is not an object,
     a negative --seq, a proof file without its fields...), as JSON on stderr.
  3  refused: a well-formed request the ledger does not allow (an impossible
     transition, too few approvals, a reused --id with other content, the
     lock held by another writer...), as JSON on stderr.
A closed stdout (`| head`) is not an error: the command's work is done and
its output dropped. `--id` makes `register`, `event` and `authorize-disposal`
safe to retry: the same id with the same content prints the stored entry
instead of recording it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from ..errors import (
    AuthorizationError,
    AutolienError,
    IdempotencyConflictError,
    InvalidTransitionError,
    LedgerCorruptError,
    LedgerLockedError,
    SignatureError,
)
from .assets import AssetLedger
from .auditor import audit, truncate
from .disposal import check_disposal_request
from .envelope import Entry, Member
from .lifecycle import format_time
from .merkle import verify_inclusion
from .note import ALG_COSIGNATURE_V1, Checkpoint, NoteSigner, NoteVerifier, open_note

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_REFUSED", "EXIT_USAGE", "add_parser", "run"]

EXIT_OK = 0
EXIT_PROBLEM = 1  # audit/verify found a problem, or the ledger's files fail their checks
EXIT_USAGE = 2  # bad arguments or malformed input
EXIT_REFUSED = 3  # a well-formed request the ledger refuses


class UsageError(ValueError):
    """Malformed input from the command line or an input file."""


def _time(s: str | None) -> datetime:
    if s is None:
        return datetime.now(UTC)
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        msg = f"time {s!r} needs a timezone (for example 2026-11-28T08:00:00+08:00 or ...Z)"
        raise ValueError(msg)
    return t.astimezone(UTC)


def _key(path: str) -> NoteSigner:
    text = Path(path).read_text().strip()
    if text.startswith("{"):
        doc = _json_object(_parse_json(text, path), f"the key file {path}")
        if not isinstance(doc.get("skey"), str):
            msg = f"{path}: a key file holds an skey (as `keygen` prints it)"
            raise UsageError(msg)
        text = doc["skey"]
    return NoteSigner.from_skey(text)


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"{what} is not valid JSON: {e}"
        raise UsageError(msg) from None


def _json_file(path: str) -> Any:
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        msg = f"{path} is not UTF-8 text"
        raise UsageError(msg) from None
    return _parse_json(text, path)


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{what} must be a JSON object, got {_json_type(value)}"
        raise UsageError(msg)
    return value


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _entry(e: Entry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "asset": e.event["asset"],
        "leaf_hash": e.leaf_hash.hex(),
        "event": e.event,
    }


def _out(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()  # a closed pipe shows here, where run() handles it


def cmd_keygen(a: argparse.Namespace) -> int:
    signer = NoteSigner.generate(a.name, ALG_COSIGNATURE_V1 if a.witness else 0x01)
    _out({"name": signer.name, "skey": signer.skey, "vkey": signer.vkey})
    return 0


def cmd_init(a: argparse.Namespace) -> int:
    members = []
    for spec in a.member:
        name, _, keys = spec.partition("=")
        vkey, _, witness = keys.partition(",")
        if not name or not vkey:
            msg = f"--member wants NAME=VKEY[,WITNESS_VKEY], got {spec!r}"
            raise ValueError(msg)
        members.append(Member(name, vkey, witness or None))
    operator = _key(a.operator_key) if a.operator_key else NoteSigner.generate(a.operator_name)
    with AssetLedger.create(
        a.dir,
        origin=a.origin,
        operator=operator,
        members=members,
        threshold=a.threshold,
        time=_time(a.time),
        hash=a.hash,
    ) as led:
        _out(
            {
                "dir": a.dir,
                "origin": led.origin,
                "operator_vkey": operator.vkey,
                "size": led.size,
                "root": led.root().hex(),
                "members": led.members,
                "threshold": led.threshold,
            }
        )
    return 0


def cmd_register(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir) as led:
        e = led.register_pledge(
            a.vin,
            a.pledge_id,
            actor=_key(a.key),
            time=_time(a.time),
            loan_amount_minor=a.loan_amount_minor,
            currency=a.currency,
            override_check_digit=a.override_check_digit,
            idempotency_key=a.id,
        )
        _out(_entry(e))
    return 0


def cmd_event(a: argparse.Namespace) -> int:
    data = _json_object(_parse_json(a.data, "--data"), "--data")
    actor, when = _key(a.key), _time(a.time)
    with AssetLedger.open(a.dir) as led:
        e = led.record(a.type, a.asset, data, actor=actor, time=when, idempotency_key=a.id)
    _out(_entry(e))
    return 0


def cmd_request_disposal(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir, read_only=True) as led:
        _out(led.disposal_request(a.asset, reason=a.reason, time=_time(a.time)))
    return 0


def _request(path: str) -> dict[str, Any]:
    req = _json_object(_json_file(path), f"the request in {path}")
    try:
        check_disposal_request(req)
    except (TypeError, ValueError) as e:
        msg = f"{path}: {e}"
        raise UsageError(msg) from None
    return req


def _approval(path: str) -> dict[str, Any]:
    ap = _json_object(_json_file(path), f"the approval in {path}")
    if set(ap) != {"member", "sig"} or not all(isinstance(v, str) for v in ap.values()):
        msg = f'{path}: an approval is {{"member": NAME, "sig": BASE64}}, as `approve` prints it'
        raise UsageError(msg)
    return ap


def cmd_approve(a: argparse.Namespace) -> int:
    _out(AssetLedger.approve_disposal(_request(a.request), _key(a.key)))
    return 0


def cmd_authorize(a: argparse.Namespace) -> int:
    approvals = [_approval(p) for p in a.approval]
    request, actor, when = _request(a.request), _key(a.key), _time(a.time)
    with AssetLedger.open(a.dir) as led:
        e = led.authorize_disposal(
            a.asset, request, approvals, actor=actor, time=when, idempotency_key=a.id
        )
    _out(_entry(e))
    return 0


def cmd_tick(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir) as led:
        _out([_entry(e) for e in led.tick(_time(a.now))])
    return 0


def cmd_checkpoint(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir) as led:
        note = led.checkpoint()
        _out({"size": led.size, "root": led.root().hex(), "note": note})
    return 0


def cmd_prove(a: argparse.Namespace) -> int:
    if a.seq is not None and a.seq < 0:
        msg = f"--seq must be 0 or more, got {a.seq}"
        raise UsageError(msg)
    with AssetLedger.open(a.dir, read_only=True) as led:
        notes = led.checkpoints()
        if not notes:
            msg = "no checkpoint yet: run `autolien ledger checkpoint` first"
            raise ValueError(msg)
        note = notes[-1]
        size = Checkpoint.parse(open_note(note, led.verifiers).text).size
        seqs = [a.seq] if a.seq is not None else led.asset(a.asset).seqs
        proofs = []
        for seq in seqs:
            if seq >= size:
                msg = f"entry {seq} is newer than the latest checkpoint (size {size})"
                raise ValueError(msg)
            proofs.append(
                {
                    "seq": seq,
                    "entry": led.entry(seq),
                    "leaf_hash": led.leaf_hash(seq).hex(),
                    "proof": [p.hex() for p in led.inclusion_proof(seq, size)],
                }
            )
        _out(
            {
                "origin": led.origin,
                "hash": led.config["hash"],
                "size": size,
                "checkpoint": note,
                "proofs": proofs,
            }
        )
    return 0


def _proof_doc(path: str) -> dict[str, Any]:
    """A proof file's shape, checked: UsageError names the first missing or mistyped field."""
    doc = _json_object(_json_file(path), f"the proof file {path}")

    def need(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
        v = obj.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            msg = f"{path}: {where}{key} is missing or not a {getattr(typ, '__name__', 'value')}"
            raise UsageError(msg)
        return v

    need(doc, "checkpoint", str, "")
    if need(doc, "hash", str, "") not in ("sha256", "keccak256"):
        msg = f"{path}: hash must be sha256 or keccak256"
        raise UsageError(msg)
    for i, item in enumerate(need(doc, "proofs", list, "")):
        where = f"proofs[{i}]."
        p = _json_object(item, f"{path}: proofs[{i}]")
        need(p, "entry", dict, where)
        if need(p, "seq", int, where) < 0:
            msg = f"{path}: {where}seq is negative"
            raise UsageError(msg)
        for h in [need(p, "leaf_hash", str, where), *need(p, "proof", list, where)]:
            if (
                not isinstance(h, str)
                or len(h) != 64
                or not all(c in "0123456789abcdef" for c in h)
            ):
                msg = f"{path}: {where}leaf_hash and proof hold 32-byte lowercase hex hashes"
                raise UsageError(msg)
    return doc


def cmd_verify(a: argparse.Namespace) -> int:
    """Stateless: checks the checkpoint signature and every inclusion proof."""
    from .jcs import canonicalize  # noqa: PLC0415
    from .merkle import leaf_hash  # noqa: PLC0415

    doc = _proof_doc(a.proof)
    try:
        verifiers = [NoteVerifier.from_vkey(v) for v in a.vkey]
    except ValueError as e:
        msg = f"--vkey: {e}"
        raise UsageError(msg) from None
    try:
        cp = Checkpoint.parse(open_note(doc["checkpoint"], verifiers).text)
    except (SignatureError, ValueError) as e:
        _out({"ok": False, "reason": f"checkpoint: {e}", "results": []})
        return EXIT_PROBLEM
    results = []
    for p in doc["proofs"]:
        lh = leaf_hash(canonicalize(p["entry"]), hash=doc["hash"])
        r: dict[str, Any] = {"seq": p["seq"], "ok": False}
        if lh.hex() != p["leaf_hash"]:
            r["reason"] = "the entry does not hash to leaf_hash"
        elif p["seq"] >= cp.size:
            r["reason"] = f"seq {p['seq']} is not below the checkpoint size {cp.size}"
        elif not verify_inclusion(
            lh, p["seq"], cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root, hash=doc["hash"]
        ):
            r["reason"] = "the inclusion proof does not lead to the checkpoint root"
        else:
            r["ok"] = True
        results.append(r)
    bad = [r for r in results if not r["ok"]]
    out: dict[str, Any] = {"ok": not bad}
    if bad:
        out["reason"] = (
            f"{len(bad)} of {len(results)} proofs fail; first: seq {bad[0]['seq']}: {bad[0]['reason']}"
        )
    out.update(origin=cp.origin, size=cp.size, root=cp.root.hex(), results=results)
    _out(out)
    return EXIT_PROBLEM if bad else EXIT_OK


def cmd_audit(a: argparse.Namespace) -> int:
    if not (Path(a.dir) / "LEDGER.json").exists():
        msg = f"{a.dir} is not an autolien ledger (no LEDGER.json)"
        raise UsageError(msg)
    rep = audit(a.dir, verify_signatures=not a.no_signatures)
    _out(rep.to_json())
    return EXIT_OK if rep.ok else EXIT_PROBLEM


def cmd_truncate(a: argparse.Namespace) -> int:
    rec = truncate(
        a.dir,
        file=a.file,
        keep=a.to,
        reason=a.reason,
        operator=_key(a.operator_key) if a.operator_key else None,
        time=_time(a.time),
    )
    _out({k: v for k, v in rec.items() if k != "sig"})
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir, read_only=True) as led:
        st = led.asset(a.asset)
        _out(
            {
                "asset": st.code,
                "vin": st.vin,
                "state": st.state.value,
                "pledged_at": format_time(st.pledged_at),
                "valuation_minor": st.valuation_minor,
                "open_alerts": st.open_alerts,
                "report": led.disposal_report(st.code),
                "history": led.history(st.code),
            }
        )
    return 0


class _JsonErrorParser(argparse.ArgumentParser):
    """Argument errors of the ledger commands as the same JSON as every other error."""

    def error(self, message: str) -> NoReturn:
        json.dump({"error": "UsageError", "message": f"{self.prog}: {message}"}, sys.stderr)
        sys.stderr.write("\n")
        raise SystemExit(EXIT_USAGE)


def add_parser(sub: Any) -> None:  # sub: argparse._SubParsersAction
    """Adds ``ledger`` and its subcommands to the top-level CLI."""
    p = sub.add_parser(
        "ledger",
        help="the consortium asset ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="ledger_command", required=True, parser_class=_JsonErrorParser)

    def add(name: str, fn: Any, help_: str, *, dir_: bool = True) -> argparse.ArgumentParser:
        q: argparse.ArgumentParser = s.add_parser(name, help=help_)
        if dir_:
            q.add_argument("dir", help="ledger directory")
        q.set_defaults(func=fn)
        return q

    q = add("keygen", cmd_keygen, "make a signing key (JSON with skey and vkey)", dir_=False)
    q.add_argument("name")
    q.add_argument(
        "--witness", action="store_true", help="a cosignature (type 0x04) key for witnessing"
    )

    q = add("init", cmd_init, "create a ledger with its consortium")
    q.add_argument("--origin", required=True)
    q.add_argument("--member", action="append", required=True, metavar="NAME=VKEY[,WITNESS_VKEY]")
    q.add_argument("--threshold", type=int, required=True, help="M: approvals a disposal needs")
    q.add_argument("--operator-key", help="operator skey file (default: generate one)")
    q.add_argument("--operator-name", default="ledger-operator")
    q.add_argument("--hash", choices=["sha256", "keccak256"], default="sha256")
    q.add_argument("--time")

    q = add("register", cmd_register, "register a pledge; prints the asset code")
    q.add_argument("--vin", required=True)
    q.add_argument("--pledge-id", required=True)
    q.add_argument("--loan-amount-minor", type=int, required=True)
    q.add_argument("--currency", default="CNY")
    q.add_argument("--override-check-digit", metavar="REASON")
    q.add_argument("--key", required=True, help="the member's skey file")
    q.add_argument("--time")
    q.add_argument("--id", help=ID_HELP)

    q = add("event", cmd_event, "record a lifecycle event")
    q.add_argument("--asset", required=True)
    q.add_argument("--type", required=True)
    q.add_argument("--data", default="{}", help="the event's data: a JSON object")
    q.add_argument("--key", required=True)
    q.add_argument("--time")
    q.add_argument("--id", help=ID_HELP)

    q = add("request-disposal", cmd_request_disposal, "print the disposal request members sign")
    q.add_argument("--asset", required=True)
    q.add_argument("--reason", required=True)
    q.add_argument("--time")

    q = add("approve", cmd_approve, "sign a disposal request as a member", dir_=False)
    q.add_argument("--request", required=True)
    q.add_argument("--key", required=True)

    q = add("authorize-disposal", cmd_authorize, "record an M-of-N disposal authorisation")
    q.add_argument("--asset", required=True)
    q.add_argument("--request", required=True)
    q.add_argument("--approval", action="append", required=True)
    q.add_argument("--key", required=True)
    q.add_argument("--time")
    q.add_argument("--id", help=ID_HELP)

    q = add("tick", cmd_tick, "record the 7-day judicial-disposal triggers that are due")
    q.add_argument("--now")

    add("checkpoint", cmd_checkpoint, "sign and store a checkpoint")

    q = add("prove", cmd_prove, "inclusion proofs against the latest checkpoint")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--seq", type=int)
    g.add_argument("--asset")

    q = add(
        "verify",
        cmd_verify,
        "check a proof file against verifier keys (no ledger needed)",
        dir_=False,
    )
    q.add_argument("--proof", required=True)
    q.add_argument("--vkey", action="append", required=True, help="operator verifier key")

    q = add("audit", cmd_audit, "re-check every entry, the root and every checkpoint")
    q.add_argument("--no-signatures", action="store_true", help="skip per-entry signature checks")

    q = add("show", cmd_show, "an asset's state and history")
    q.add_argument("--asset", required=True)

    q = add(
        "truncate",
        cmd_truncate,
        "operator only: cut a damaged file to its first N records, recording what and why",
    )
    q.add_argument("--to", type=int, required=True, metavar="N", help="records to keep")
    q.add_argument("--reason", required=True, help="why (kept in truncations.dat)")
    q.add_argument("--file", choices=["entries.dat", "checkpoints.dat"], default="entries.dat")
    q.add_argument("--operator-key", help="operator skey file (default: operator.skey in DIR)")
    q.add_argument("--time")


ID_HELP = "idempotency key: a retry with the same id and content prints the stored entry"


def _message(e: BaseException) -> str:
    # KeyError's str() quotes its argument; the others do not.
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _exit_code(e: BaseException) -> int:
    if isinstance(e, LedgerCorruptError):
        return EXIT_PROBLEM
    if isinstance(
        e,
        InvalidTransitionError
        | AuthorizationError
        | IdempotencyConflictError
        | LedgerLockedError
        | SignatureError
        | PermissionError
        | FileExistsError
        | KeyError,
    ):
        return EXIT_REFUSED
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """Runs a parsed ``ledger`` command; errors become one JSON line on stderr."""
    try:
        result: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`| head`). The work is done; drop the output
        # quietly, and keep the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except (AutolienError, ValueError, TypeError, KeyError, IndexError, OSError) as e:
        err: dict[str, Any] = {"error": type(e).__name__, "message": _message(e)}
        if isinstance(e, LedgerCorruptError):
            err.update(path=e.path, offset=e.offset, index=e.index)
        json.dump(err, sys.stderr)
        sys.stderr.write("\n")
        return _exit_code(e)
    return result
