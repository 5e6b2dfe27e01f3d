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

Exit status: 0 on success, 1 when ``audit`` or ``verify`` finds a problem,
2 for an error (its JSON goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import AutolienError
from .assets import AssetLedger, Entry, Member, audit
from .lifecycle import format_time
from .merkle import verify_inclusion
from .note import ALG_COSIGNATURE_V1, Checkpoint, NoteSigner, NoteVerifier, open_note

__all__ = ["add_parser"]


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
        text = json.loads(text)["skey"]
    return NoteSigner.from_skey(text)


def _json_file(path: str) -> Any:
    return json.loads(Path(path).read_text())


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
        )
        _out(_entry(e))
    return 0


def cmd_event(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir) as led:
        _out(
            _entry(
                led.record(
                    a.type, a.asset, json.loads(a.data), actor=_key(a.key), time=_time(a.time)
                )
            )
        )
    return 0


def cmd_request_disposal(a: argparse.Namespace) -> int:
    with AssetLedger.open(a.dir, read_only=True) as led:
        _out(led.disposal_request(a.asset, reason=a.reason, time=_time(a.time)))
    return 0


def cmd_approve(a: argparse.Namespace) -> int:
    _out(AssetLedger.approve_disposal(_json_file(a.request), _key(a.key)))
    return 0


def cmd_authorize(a: argparse.Namespace) -> int:
    approvals = [_json_file(p) for p in a.approval]
    with AssetLedger.open(a.dir) as led:
        e = led.authorize_disposal(
            a.asset, _json_file(a.request), approvals, actor=_key(a.key), time=_time(a.time)
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


def cmd_verify(a: argparse.Namespace) -> int:
    """Stateless: checks the checkpoint signature and every inclusion proof."""
    from .jcs import canonicalize  # noqa: PLC0415
    from .merkle import leaf_hash  # noqa: PLC0415

    doc = _json_file(a.proof)
    verifiers = [NoteVerifier.from_vkey(v) for v in a.vkey]
    cp = Checkpoint.parse(open_note(doc["checkpoint"], verifiers).text)
    results = []
    for p in doc["proofs"]:
        lh = leaf_hash(canonicalize(p["entry"]), hash=doc["hash"])
        ok = lh.hex() == p["leaf_hash"] and verify_inclusion(
            lh, p["seq"], cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root, hash=doc["hash"]
        )
        results.append({"seq": p["seq"], "ok": ok})
    ok_all = all(r["ok"] for r in results)
    _out(
        {
            "ok": ok_all,
            "origin": cp.origin,
            "size": cp.size,
            "root": cp.root.hex(),
            "results": results,
        }
    )
    return 0 if ok_all else 1


def cmd_audit(a: argparse.Namespace) -> int:
    rep = audit(a.dir, verify_signatures=not a.no_signatures)
    _out(rep.to_json())
    return 0 if rep.ok else 1


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


def add_parser(sub: Any) -> None:  # sub: argparse._SubParsersAction
    """Adds ``ledger`` and its subcommands to the top-level CLI."""
    p = sub.add_parser(
        "ledger",
        help="the consortium asset ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="ledger_command", required=True)

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

    q = add("event", cmd_event, "record a lifecycle event")
    q.add_argument("--asset", required=True)
    q.add_argument("--type", required=True)
    q.add_argument("--data", default="{}")
    q.add_argument("--key", required=True)
    q.add_argument("--time")

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


def run(args: argparse.Namespace) -> int:
    try:
        result: int = args.func(args)
    except (AutolienError, ValueError, KeyError, OSError, PermissionError) as e:
        json.dump({"error": type(e).__name__, "message": str(e).strip("'")}, sys.stderr)
        sys.stderr.write("\n")
        return 2
    return result
