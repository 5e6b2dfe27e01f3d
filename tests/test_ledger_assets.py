"""The consortium asset ledger: identity, lifecycle rules, M-of-N disposal, the
7-day trigger, auctions, checkpoints and witnesses, durability and audit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolien.errors import (
    AuthorizationError,
    IdempotencyConflictError,
    InvalidTransitionError,
    InvalidVINError,
    LedgerCorruptError,
    LedgerLockedError,
    SignatureError,
)
from autolien.ledger import MerkleLog, verify_consistency, verify_inclusion
from autolien.ledger.assets import AssetLedger, Member, Witness, audit
from autolien.ledger.identity import asset_code, vin_check_digit
from autolien.ledger.lifecycle import State, bid_commitment
from autolien.ledger.note import ALG_COSIGNATURE_V1, Checkpoint, NoteSigner, open_note

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HERE = Path(__file__).parent


def vin(seed: int) -> str:
    body = f"LSVAU2180N{seed:07d}"
    return body[:8] + vin_check_digit(body) + body[9:]


@dataclass
class Consortium:
    op: NoteSigner
    banks: list[NoteSigner]
    witnesses: list[NoteSigner]

    @property
    def members(self) -> list[Member]:
        return [
            Member(b.name, b.vkey, w.vkey) for b, w in zip(self.banks, self.witnesses, strict=True)
        ]


@pytest.fixture(scope="module")
def cons() -> Consortium:
    banks = [NoteSigner.generate(f"bank{i}.example") for i in range(5)]
    wits = [NoteSigner.generate(f"bank{i}.example/w", alg=ALG_COSIGNATURE_V1) for i in range(5)]
    return Consortium(NoteSigner.generate("ledger.example"), banks, wits)


def new_ledger(tmp_path: Path, cons: Consortium, threshold: int = 3) -> AssetLedger:
    return AssetLedger.create(
        tmp_path / "ledger",
        origin="autolien.example/test",
        operator=cons.op,
        members=cons.members,
        threshold=threshold,
        time=T0,
    )


def defaulted(led: AssetLedger, cons: Consortium, seed: int = 1, *, at: datetime = T0) -> str:
    b = cons.banks[0]
    code = led.register_pledge(
        vin(seed), f"P-{seed}", actor=b, time=at, loan_amount_minor=10_000_000
    ).event["asset"]
    led.record("valuation_updated", code, {"value_minor": 12_000_000}, actor=b, time=at + DAY)
    led.record(
        "default_declared", code, {"outstanding_minor": 9_000_000}, actor=b, time=at + 30 * DAY
    )
    return code


def authorized(led: AssetLedger, cons: Consortium, seed: int = 1) -> str:
    code = defaulted(led, cons, seed)
    req = led.disposal_request(code, reason="default", time=T0 + 31 * DAY)
    aps = [AssetLedger.approve_disposal(req, b) for b in cons.banks[:3]]
    led.authorize_disposal(code, req, aps, actor=cons.banks[0], time=T0 + 32 * DAY)
    return code


# --- identity -------------------------------------------------------------------


def test_pledge_gives_one_code_that_resolves_to_history(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    e = led.register_pledge(
        vin(7), "P-7", actor=cons.banks[1], time=T0, loan_amount_minor=5_000_000
    )
    code = e.event["asset"]
    assert code == asset_code(vin(7), "P-7")
    assert led.code_for_vin(vin(7)) == code
    led.record(
        "valuation_updated", code, {"value_minor": 6_000_000}, actor=cons.banks[1], time=T0 + DAY
    )
    assert [h["type"] for h in led.history(code.lower())] == [
        "pledge_registered",
        "valuation_updated",
    ]
    # The same VIN cannot be pledged twice at once.
    with pytest.raises(InvalidTransitionError, match="already pledged"):
        led.register_pledge(vin(7), "P-8", actor=cons.banks[2], time=T0 + DAY, loan_amount_minor=1)
    led.record(
        "pledge_released", code, {"reason": "repaid"}, actor=cons.banks[1], time=T0 + 2 * DAY
    )
    again = led.register_pledge(
        vin(7), "P-8", actor=cons.banks[2], time=T0 + 3 * DAY, loan_amount_minor=1
    )
    assert again.event["asset"] != code
    assert led.code_for_vin(vin(7)) == again.event["asset"]


def test_bad_check_digit_rejected_unless_overridden_and_recorded(
    tmp_path: Path, cons: Consortium
) -> None:
    led = new_ledger(tmp_path, cons)
    good = vin(3)
    bad = good[:8] + ("0" if good[8] != "0" else "1") + good[9:]
    size = led.size
    with pytest.raises(InvalidVINError, match="check digit"):
        led.register_pledge(bad, "P-1", actor=cons.banks[0], time=T0, loan_amount_minor=1)
    assert led.size == size
    e = led.register_pledge(
        bad,
        "P-1",
        actor=cons.banks[0],
        time=T0,
        loan_amount_minor=1,
        override_check_digit="imported, EU VIN",
    )
    assert e.event["data"]["vin_check"] == "overridden"
    assert e.event["data"]["override_reason"] == "imported, EU VIN"
    led.close()
    assert audit(tmp_path / "ledger").ok


# --- lifecycle rules ---------------------------------------------------------------


def test_impossible_transitions_record_nothing(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    b = cons.banks[0]
    code = led.register_pledge(vin(1), "P-1", actor=b, time=T0, loan_amount_minor=10).event["asset"]
    entries_file = tmp_path / "ledger" / "entries.dat"
    before = (led.size, led.root(), entries_file.stat().st_size)
    fake_req = {
        "type": "disposal_request",
        "asset": code,
        "default_seq": None,
        "reason": "x",
        "requested_at": "x",
    }
    cases = [
        (
            "disposal before default",
            lambda: led.authorize_disposal(code, fake_req, [], actor=b, time=T0 + DAY),
        ),
        (
            "auction before disposal",
            lambda: led.record("auction_opened", code, {}, actor=b, time=T0 + DAY),
        ),
        (
            "cure without overdue",
            lambda: led.record("loan_cured", code, {}, actor=b, time=T0 + DAY),
        ),
        ("settle without auction", lambda: led.settle(code, actor=b, time=T0 + DAY)),
        (
            "time going backwards",
            lambda: led.record("loan_overdue", code, {"days_overdue": 3}, actor=b, time=T0 - DAY),
        ),
        (
            "closing an alert never raised",
            lambda: led.record("alert_closed", code, {"alert_id": "a1"}, actor=b, time=T0),
        ),
    ]
    for why, call in cases:
        with pytest.raises(InvalidTransitionError):
            call()
        assert (led.size, led.root(), entries_file.stat().st_size) == before, why
    with pytest.raises(ValueError, match="days_overdue"):
        led.record("loan_overdue", code, {"days_overdue": "3"}, actor=b, time=T0 + DAY)
    outsider = NoteSigner.generate("outsider.example")
    with pytest.raises(SignatureError, match="not a consortium member"):
        led.record("valuation_updated", code, {"value_minor": 1}, actor=outsider, time=T0 + DAY)
    imposter = NoteSigner.generate(b.name)  # right name, wrong key
    with pytest.raises(SignatureError, match="does not verify"):
        led.record("valuation_updated", code, {"value_minor": 1}, actor=imposter, time=T0 + DAY)
    assert (led.size, led.root()) == before[:2]


def test_released_and_settled_are_final(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    b = cons.banks[0]
    code = led.register_pledge(vin(1), "P-1", actor=b, time=T0, loan_amount_minor=10).event["asset"]
    led.record("pledge_released", code, {}, actor=b, time=T0 + DAY)
    with pytest.raises(InvalidTransitionError, match="ended"):
        led.record("valuation_updated", code, {"value_minor": 5}, actor=b, time=T0 + 2 * DAY)
    code2 = defaulted(led, cons, 2)
    with pytest.raises(InvalidTransitionError, match="disposed of, not released"):
        led.record("pledge_released", code2, {}, actor=b, time=T0 + 31 * DAY)


# --- M of N -------------------------------------------------------------------------


def test_m_of_n_disposal_authorization(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons, threshold=3)
    code = defaulted(led, cons)
    req = led.disposal_request(code, reason="default", time=T0 + 31 * DAY)
    ok = [AssetLedger.approve_disposal(req, b) for b in cons.banks[:3]]
    other_req = {**req, "reason": "something else"}
    outsider = NoteSigner.generate("bank9.example")
    bad_cases = {
        "too few": ok[:2],
        "duplicate": [*ok[:2], ok[1]],
        "unknown member": [*ok[:2], AssetLedger.approve_disposal(req, outsider)],
        "other request": [*ok[:2], AssetLedger.approve_disposal(other_req, cons.banks[3])],
        "forged": [*ok[:2], {"member": cons.banks[3].name, "sig": ok[0]["sig"]}],
    }
    size = led.size
    for why, approvals in bad_cases.items():
        with pytest.raises(AuthorizationError):
            led.authorize_disposal(code, req, approvals, actor=cons.banks[0], time=T0 + 32 * DAY)
        assert led.size == size, why
    # Approvals for another default of the asset cannot be replayed.
    stale = {**req, "default_seq": req["default_seq"] - 1}
    with pytest.raises(AuthorizationError, match="current default"):
        led.authorize_disposal(
            code,
            stale,
            [AssetLedger.approve_disposal(stale, b) for b in cons.banks[:3]],
            actor=cons.banks[0],
            time=T0 + 32 * DAY,
        )
    e = led.authorize_disposal(
        code,
        req,
        [*ok, AssetLedger.approve_disposal(req, cons.banks[4])],
        actor=cons.banks[0],
        time=T0 + 32 * DAY,
    )
    assert led.asset(code).state is State.DISPOSAL_AUTHORIZED
    assert len(e.event["data"]["approvals"]) == 4


# --- the 7-day rule --------------------------------------------------------------------


def test_seven_day_trigger_is_deterministic(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    code = defaulted(led, cons)  # default at T0 + 30 days
    deadline = T0 + 37 * DAY
    assert led.tick(deadline - timedelta(microseconds=1)) == []
    trig = led.tick(T0 + 45 * DAY)  # ticking late does not move the trigger
    assert [e.event["type"] for e in trig] == ["judicial_disposal_triggered"]
    assert trig[0].event["time"] == "2026-02-11T08:00:00.000000Z"  # default + 7 days
    assert trig[0].event["actor"] == cons.op.name
    assert led.tick(T0 + 60 * DAY) == []  # once per idle period
    # A disposal action restarts the clock.
    req = led.disposal_request(code, reason="default", time=T0 + 61 * DAY)
    aps = [AssetLedger.approve_disposal(req, b) for b in cons.banks[:3]]
    led.authorize_disposal(code, req, aps, actor=cons.banks[0], time=T0 + 61 * DAY)
    assert led.tick(T0 + 67 * DAY) == []
    assert len(led.tick(T0 + 68 * DAY)) == 1


def test_trigger_is_recorded_before_a_late_event_even_without_tick(
    tmp_path: Path, cons: Consortium
) -> None:
    a = new_ledger(tmp_path / "a", cons)
    b = new_ledger(tmp_path / "b", cons)
    for led in (a, b):
        code = defaulted(led, cons)
    a.tick(T0 + 40 * DAY)
    # b never ticks, but a valuation after the deadline records the trigger first.
    a.record("valuation_updated", code, {"value_minor": 1}, actor=cons.banks[0], time=T0 + 41 * DAY)
    b.record("valuation_updated", code, {"value_minor": 1}, actor=cons.banks[0], time=T0 + 41 * DAY)
    assert [e["type"] for e in a.history(code)] == [e["type"] for e in b.history(code)]
    assert a.root() == b.root()


# --- auctions ---------------------------------------------------------------------------


def test_ascending_auction_premium_and_cycle_time(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    code = authorized(led, cons)
    b = cons.banks[1]
    led.open_auction(
        code,
        actor=b,
        time=T0 + 33 * DAY,
        closes_at=T0 + 35 * DAY,
        reserve_ratio_ppm=800_000,
        min_increment_minor=50_000,
    )
    assert led.asset(code).auction.reserve_minor == 9_600_000  # 80% of the 12M valuation
    with pytest.raises(InvalidTransitionError, match="at least 9600000"):
        led.place_bid(code, "d1", amount_minor=9_500_000, actor=b, time=T0 + 33 * DAY)
    led.place_bid(code, "d1", amount_minor=9_600_000, actor=b, time=T0 + 34 * DAY)
    with pytest.raises(InvalidTransitionError, match="at least 9650000"):
        led.place_bid(code, "d2", amount_minor=9_640_000, actor=b, time=T0 + 34 * DAY)
    led.place_bid(code, "d2", amount_minor=10_080_000, actor=b, time=T0 + 34 * DAY)
    with pytest.raises(InvalidTransitionError, match="runs until"):
        led.close_auction(code, actor=b, time=T0 + 34 * DAY)
    led.close_auction(code, actor=b, time=T0 + 35 * DAY)
    with pytest.raises(InvalidTransitionError, match="no auction is open"):
        led.place_bid(
            code, "d3", amount_minor=20_000_000, actor=b, time=T0 + 35 * DAY
        )  # a bid after close
    led.settle(code, actor=b, time=T0 + 36 * DAY)
    rep = led.disposal_report(code)
    assert rep["winner"] == "d2"
    assert rep["premium_over_reserve"] == pytest.approx(0.05)
    assert rep["cycle_time_days"] == pytest.approx(6.0)  # default day 30 -> settled day 36


def test_sealed_auction_reveals(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    code = authorized(led, cons)
    b = cons.banks[1]
    led.open_auction(code, kind="sealed", actor=b, time=T0 + 33 * DAY, closes_at=T0 + 35 * DAY)
    aid = led.asset(code).auction.auction_id
    bids = {"d1": (12_500_000, "n1"), "d2": (13_000_000, "n2"), "d3": (11_000_000, "n3")}
    for bidder, (amount, nonce) in bids.items():
        led.place_bid(
            code,
            bidder,
            commitment=bid_commitment(aid, bidder, amount, nonce),
            actor=b,
            time=T0 + 34 * DAY,
        )
    with pytest.raises(InvalidTransitionError, match="already bid"):
        led.place_bid(code, "d1", commitment="0" * 64, actor=b, time=T0 + 34 * DAY)
    reveals = [{"bidder": k, "amount_minor": v[0], "nonce": v[1]} for k, v in bids.items()]
    lie = [*reveals[:1], {**reveals[1], "amount_minor": 14_000_000}, reveals[2]]
    with pytest.raises(InvalidTransitionError, match="does not match its commitment"):
        led.close_auction(code, actor=b, time=T0 + 35 * DAY, reveals=lie)
    e = led.close_auction(code, actor=b, time=T0 + 35 * DAY, reveals=reveals)
    # d3 is below the 12M reserve; d2 wins at its own (first) price.
    assert (e.event["data"]["winner"], e.event["data"]["price_minor"]) == ("d2", 13_000_000)


def test_unsold_auction_can_reopen(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    code = authorized(led, cons)
    b = cons.banks[1]
    led.open_auction(code, actor=b, time=T0 + 33 * DAY, closes_at=T0 + 34 * DAY)
    led.close_auction(code, actor=b, time=T0 + 34 * DAY)
    with pytest.raises(InvalidTransitionError):
        led.settle(code, actor=b, time=T0 + 35 * DAY)
    led.record("valuation_updated", code, {"value_minor": 10_000_000}, actor=b, time=T0 + 35 * DAY)
    led.open_auction(code, actor=b, time=T0 + 35 * DAY, closes_at=T0 + 36 * DAY)
    assert led.asset(code).auction.reserve_minor == 10_000_000


# --- checkpoints and witnesses ---------------------------------------------------------


def test_checkpoints_are_c2sp_notes_and_witnesses_check_consistency(
    tmp_path: Path, cons: Consortium
) -> None:
    led = new_ledger(tmp_path, cons)
    code = defaulted(led, cons)
    note1 = led.checkpoint()
    cp1 = Checkpoint.parse(open_note(note1, [cons.op.verifier]).text)
    assert (cp1.origin, cp1.size, cp1.root) == (led.origin, led.size, led.root())
    w = Witness(cons.witnesses[2], cons.op.vkey, led.origin)
    led.add_cosignature(note1, w.cosign(note1, [], timestamp=1_800_000_000))
    led.record(
        "valuation_updated", code, {"value_minor": 1}, actor=cons.banks[0], time=T0 + 31 * DAY
    )
    note2 = led.checkpoint()
    line = w.cosign(note2, led.consistency_proof(cp1.size), timestamp=1_800_000_100)
    cosigned = led.add_cosignature(note2, line)
    opened = open_note(cosigned, [cons.op.verifier, cons.witnesses[2].verifier])
    assert [s.verified for s in opened.signatures] == [True, True]
    # A forked log: same size history, different entries. The witness refuses it.
    fork = MerkleLog()
    fork.extend([b"forged"] * (led.size + 1))
    forged_body = Checkpoint(led.origin, fork.size, fork.root()).text()
    from autolien.ledger.note import sign_note

    forged = sign_note(forged_body, [cons.op])
    with pytest.raises(SignatureError, match="not consistent"):
        w.cosign(forged, fork.consistency_proof(cp1.size + 1), timestamp=1_800_000_200)
    with pytest.raises(SignatureError, match="smaller"):
        w.cosign(note1, [], timestamp=1_800_000_300)
    led.close()
    rep = audit(tmp_path / "ledger")
    assert rep.ok
    assert (rep.checkpoints, rep.cosignatures) == (4, 2)


def test_proofs_from_the_ledger_verify(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    defaulted(led, cons, 1)
    defaulted(led, cons, 2)
    for seq in range(led.size):
        assert verify_inclusion(
            led.leaf_hash(seq), seq, led.size, led.inclusion_proof(seq), led.root()
        )
    assert verify_consistency(3, led.size, led.consistency_proof(3), led.root(3), led.root())


# --- durability -------------------------------------------------------------------------


def _member_ledger(tmp_path: Path, cons: Consortium) -> tuple[Path, str]:
    led = new_ledger(tmp_path, cons)
    code = led.register_pledge(
        vin(1), "P-1", actor=cons.banks[0], time=T0, loan_amount_minor=1
    ).event["asset"]
    led.checkpoint()
    led.close()
    return tmp_path / "ledger", code


@pytest.mark.parametrize("batch", [1, 16])
def test_sigkill_at_random_points_loses_no_acknowledged_entry(
    tmp_path: Path, cons: Consortium, batch: int
) -> None:
    path, code = _member_ledger(tmp_path, cons)
    rnd = random.Random(batch)
    acked: list[int] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for round_ in range(6):
        start = len(acked) + 1000 * round_
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "ledger_crash_writer.py"),
                str(path),
                cons.banks[0].skey,
                code,
                str(start),
                str(batch),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        # Wait for a few acknowledgements, then kill at a random moment.
        for _ in range(rnd.randint(1, 5)):
            line = proc.stdout.readline()
            if line:
                acked.extend(json.loads(line))
        _time.sleep(rnd.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in rest.splitlines():
            acked.extend(json.loads(line))
        with AssetLedger.open(path) as led:  # truncates a torn tail, checks the checkpoint
            seqs = {e["seq"] for e in led.entries()}
            assert set(acked) <= seqs
            led.checkpoint()
    rep = audit(path)
    assert rep.ok, rep.first_bad
    assert rep.entries >= len(acked) + 2


def test_torn_tail_is_truncated_and_reported(tmp_path: Path, cons: Consortium) -> None:
    path, code = _member_ledger(tmp_path, cons)
    entries = path / "entries.dat"
    good = entries.read_bytes()
    with open(entries, "ab") as f:
        f.write(b"\x00\x00\x01\x00" + b'{"v":1,"seq":2,')  # a half-written record
    assert audit(path).torn_tail_bytes > 0
    with AssetLedger.open(path) as led:
        assert led.recovered_torn_bytes > 0
        assert led.size == 2
    assert entries.read_bytes() == good
    with open(entries, "ab") as f:
        f.write(b"\x00" * 5000)  # a zero-filled tail (file grown, data lost)
    with AssetLedger.open(path) as led:
        assert led.size == 2
        led.record(
            "valuation_updated", code, {"value_minor": 5}, actor=cons.banks[0], time=T0 + DAY
        )
    assert audit(path).ok


def test_mid_file_corruption_is_reported_with_offset_not_repaired(
    tmp_path: Path, cons: Consortium
) -> None:
    path, code = _member_ledger(tmp_path, cons)
    with AssetLedger.open(path) as led:
        for i in range(5):
            led.record(
                "valuation_updated",
                code,
                {"value_minor": i},
                actor=cons.banks[0],
                time=T0 + i * DAY,
            )
        second_offset = len(_frame_of(led, 0))
    entries = path / "entries.dat"
    raw = bytearray(entries.read_bytes())
    raw[second_offset + 40] ^= 0x20
    entries.write_bytes(bytes(raw))
    with pytest.raises(LedgerCorruptError) as info:
        AssetLedger.open(path)
    assert info.value.offset == second_offset
    assert info.value.index == 1
    assert entries.read_bytes() == bytes(raw)  # untouched
    rep = audit(path)
    assert not rep.ok
    assert rep.first_bad is not None
    assert rep.first_bad["offset"] == second_offset


def _frame_of(led: AssetLedger, seq: int) -> bytes:
    from autolien.ledger.jcs import canonicalize
    from autolien.ledger.storage import frame

    return frame(canonicalize(led.entry(seq)))


def test_lost_acknowledged_entries_are_detected(tmp_path: Path, cons: Consortium) -> None:
    path, code = _member_ledger(tmp_path, cons)
    with AssetLedger.open(path) as led:
        led.record(
            "valuation_updated", code, {"value_minor": 1}, actor=cons.banks[0], time=T0 + DAY
        )
        led.checkpoint()
        keep = len(_frame_of(led, 0)) + len(_frame_of(led, 1))
    os.truncate(path / "entries.dat", keep)  # drops entry 2, which a checkpoint covers
    with pytest.raises(LedgerCorruptError, match="acknowledged entries are missing"):
        AssetLedger.open(path)


def test_second_writer_is_refused(tmp_path: Path, cons: Consortium) -> None:
    path, _ = _member_ledger(tmp_path, cons)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys,time; from autolien.ledger.assets import AssetLedger;"
                f"l=AssetLedger.open({str(path)!r}); print('locked', flush=True); time.sleep(30)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerLockedError, match=f"pid {holder.pid}"):
            AssetLedger.open(path)
        with AssetLedger.open(path, read_only=True) as ro:  # readers need no lock
            assert ro.size == 2
    finally:
        holder.kill()
        holder.communicate()
    with AssetLedger.open(path) as led:  # the lock dies with its process
        assert led.size == 2


# --- audit ---------------------------------------------------------------------------------


def _rewrite_entry(path: Path, index: int, mutate: object) -> None:
    from autolien.ledger.jcs import canonicalize
    from autolien.ledger.storage import frame, scan_records

    scan = scan_records(path / "entries.dat")
    records = list(scan.records)
    ev = json.loads(records[index])
    mutate(ev)  # type: ignore[operator]
    records[index] = canonicalize(ev)
    (path / "entries.dat").write_bytes(b"".join(frame(r) for r in records))


def test_audit_finds_the_first_tampered_entry(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    defaulted(led, cons, 1)
    defaulted(led, cons, 2)
    led.close()
    path = tmp_path / "ledger"
    assert audit(path).ok
    original = (path / "entries.dat").read_bytes()

    def raise_value(ev: dict) -> None:  # type: ignore[type-arg]
        ev["data"]["value_minor"] += 1

    _rewrite_entry(path, 5, raise_value)  # valid framing, but the signature no longer matches
    rep = audit(path)
    assert not rep.ok
    assert rep.first_bad is not None
    assert rep.first_bad["index"] == 5
    assert "signature" in rep.first_bad["reason"]
    (path / "entries.dat").write_bytes(original)

    def resign_as_other_member(ev: dict) -> None:  # type: ignore[type-arg]
        ev["actor"] = cons.banks[3].name  # claims another member without its key

    _rewrite_entry(path, 2, resign_as_other_member)
    rep = audit(path)
    assert rep.first_bad is not None
    assert rep.first_bad["index"] == 2


def test_parallel_audit_finds_the_same_first_bad_entry(
    tmp_path: Path, cons: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autolien.ledger.auditor as auditor_mod

    led = new_ledger(tmp_path, cons)
    for seed in range(1, 4):
        defaulted(led, cons, seed)
    led.close()
    path = tmp_path / "ledger"

    def bump(ev: dict) -> None:  # type: ignore[type-arg]
        ev["data"]["value_minor"] += 1

    _rewrite_entry(path, 8, bump)
    sequential = audit(path, workers=1)
    monkeypatch.setattr(auditor_mod, "PARALLEL_AUDIT_MIN", 1)
    parallel = audit(path, workers=2)
    assert sequential.first_bad == parallel.first_bad
    assert parallel.first_bad is not None
    assert parallel.first_bad["index"] == 8


def test_an_unguarded_script_that_audits_on_workers_runs_once(
    tmp_path: Path, cons: Consortium
) -> None:
    """A script without ``if __name__ == "__main__"`` that audits a ledger
    on worker processes (the pipeline's pre-run audit does, from
    ``PARALLEL_AUDIT_MIN`` entries) runs once: spawned workers would
    otherwise execute it again, each auditing (and spawning) anew."""
    led = new_ledger(tmp_path, cons)
    for seed in range(1, 3):
        defaulted(led, cons, seed)
    led.close()
    log = tmp_path / "runs.log"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import autolien.ledger.auditor as a\n"
        "from autolien.ledger.assets import audit\n"
        "a.PARALLEL_AUDIT_MIN = 1\n"
        f"open({str(log)!r}, 'a').write('run\\n')\n"
        f"r = audit({str(tmp_path / 'ledger')!r}, workers=2)\n"
        "print(r.ok, r.entries)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert log.read_text() == "run\n"
    assert out.stdout.split()[0] == "True"


def test_record_many_is_all_or_nothing_and_places_triggers(
    tmp_path: Path, cons: Consortium
) -> None:
    led = new_ledger(tmp_path, cons)
    code = defaulted(led, cons)  # default at day 30, trigger due at day 37
    b = cons.banks[0]
    size, root = led.size, led.root()
    with pytest.raises(InvalidTransitionError):
        led.record_many(
            [
                ("valuation_updated", code, {"value_minor": 1}, b, T0 + 31 * DAY),
                ("loan_cured", code, {}, b, T0 + 32 * DAY),  # not overdue: the batch fails
            ]
        )
    assert (led.size, led.root()) == (size, root)
    entries = led.record_many(
        [
            ("valuation_updated", code, {"value_minor": 1}, b, T0 + 31 * DAY),
            ("valuation_updated", code, {"value_minor": 2}, b, T0 + 40 * DAY),
        ]
    )
    assert [e.event["type"] for e in entries] == [
        "valuation_updated",
        "judicial_disposal_triggered",
        "valuation_updated",
    ]
    assert entries[1].event["time"] == "2026-02-11T08:00:00.000000Z"
    led.close()
    assert audit(tmp_path / "ledger").ok


# --- idempotency keys (issue 15, point 4) ------------------------------------------------


def test_idempotency_key_returns_the_stored_entry_and_survives_reopening(
    tmp_path: Path, cons: Consortium
) -> None:
    led = new_ledger(tmp_path, cons)
    b = cons.banks[0]
    reg = led.register_pledge(
        vin(3), "P-3", actor=b, time=T0, loan_amount_minor=1, idempotency_key="reg-3"
    )
    code = reg.event["asset"]
    again = led.register_pledge(
        vin(3), "P-3", actor=b, time=T0 + DAY, loan_amount_minor=1, idempotency_key="reg-3"
    )
    assert again == reg
    e = led.record(
        "valuation_updated", code, {"value_minor": 5}, actor=b, time=T0, idempotency_key="v-1"
    )
    assert e.event["id"] == "v-1"
    assert led.size == 3
    led.close()
    with AssetLedger.open(tmp_path / "ledger") as led:  # the keys are rebuilt by replay
        same = led.record(
            "valuation_updated", code, {"value_minor": 5}, actor=b, time=T0, idempotency_key="v-1"
        )
        assert same.seq == e.seq
        assert led.size == 3
        with pytest.raises(IdempotencyConflictError, match="other content"):
            led.record(
                "valuation_updated",
                code,
                {"value_minor": 6},
                actor=b,
                time=T0,
                idempotency_key="v-1",
            )
        # Keys are per actor: another member may use the same one.
        other = led.record(
            "valuation_updated",
            code,
            {"value_minor": 5},
            actor=cons.banks[1],
            time=T0,
            idempotency_key="v-1",
        )
        assert other.seq == 3
        # A batch retried after a partial success records only what is new.
        batch = [
            ("valuation_updated", code, {"value_minor": 7}, b, T0 + DAY, "v-2"),
            ("valuation_updated", code, {"value_minor": 5}, b, T0, "v-1"),
        ]
        first = led.record_many(batch)
        assert [x.seq for x in first] == [4, 2]
        assert [x.seq for x in led.record_many(batch)] == [4, 2]
        assert led.size == 5
        with pytest.raises(IdempotencyConflictError, match="twice in one batch"):
            led.record_many([(*batch[0][:5], "v-3"), (*batch[0][:5], "v-3")])
        assert led.size == 5
        with pytest.raises(ValueError, match="idempotency key"):
            led.record("valuation_updated", code, {"value_minor": 1}, actor=b, time=T0,
                       idempotency_key="\n")  # fmt: skip
    assert audit(tmp_path / "ledger").ok


def test_retried_auction_helpers_return_the_stored_entry(tmp_path: Path, cons: Consortium) -> None:
    led = new_ledger(tmp_path, cons)
    code = authorized(led, cons)
    b = cons.banks[0]
    kw = {"actor": b, "time": T0 + 33 * DAY, "closes_at": T0 + 34 * DAY}
    opened = led.open_auction(code, **kw, idempotency_key="open-1")  # type: ignore[arg-type]
    assert led.open_auction(code, **kw, idempotency_key="open-1") == opened  # type: ignore[arg-type]
    led.place_bid(code, "buyer-1", actor=b, time=T0 + 33 * DAY, amount_minor=13_000_000)
    closed = led.close_auction(code, actor=b, time=T0 + 34 * DAY, idempotency_key="close-1")
    assert led.close_auction(code, actor=b, time=T0 + 34 * DAY, idempotency_key="close-1") == closed
    settled = led.settle(code, actor=b, time=T0 + 35 * DAY, idempotency_key="settle-1")
    assert led.settle(code, actor=b, time=T0 + 36 * DAY, idempotency_key="settle-1") == settled
    with pytest.raises(IdempotencyConflictError):
        led.settle(code, actor=b, time=T0 + 36 * DAY, idempotency_key="open-1")
    assert led.size == settled.seq + 1
