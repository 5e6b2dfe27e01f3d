"""A run replays its ledger once, not three times (issue 17): the pre-run
audit hands its replay to the ledger stage, and the stage its final state to
the dashboard, through a ``Replay`` slot keyed by the tree head. These tests
check that the slot is used when the files are as replayed, and never when
they changed since: the reference is a fresh open, which replays the files
themselves."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import autolien.ledger.auditor as auditor_mod
import autolien.ledger.log as log_mod
from autolien.cli import main
from autolien.ledger.assets import AssetLedger, Member, audit
from autolien.ledger.identity import vin_check_digit
from autolien.ledger.log import Replay
from autolien.ledger.note import NoteSigner
from autolien.sim.portfolio import write_portfolio

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
OP = NoteSigner.generate("ledger.example")
BANK = NoteSigner.generate("bank0.example")
OTHER = NoteSigner.generate("bank1.example")


def vin(seed: int) -> str:
    body = f"LSVAU2180N{seed:07d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def make(path: Path, pledges: int = 3, origin: str = "autolien.example/replay") -> list[str]:
    led = AssetLedger.create(
        path,
        origin=origin,
        operator=OP,
        members=[Member(BANK.name, BANK.vkey), Member(OTHER.name, OTHER.vkey)],
        threshold=1,
        time=T0,
    )
    codes = []
    for i in range(pledges):
        e = led.register_pledge(vin(i + 1), f"P-{i}", actor=BANK, time=T0, loan_amount_minor=1_000)
        codes.append(e.event["asset"])
        led.record(
            "valuation_updated", codes[-1], {"value_minor": 500 + i}, actor=BANK, time=T0 + DAY
        )
    led.checkpoint()
    led.close()
    return codes


def state(led: AssetLedger) -> dict[str, Any]:
    """Everything a reader sees of the books."""
    return {
        "size": led.size,
        "root": led.root().hex(),
        "entries": [json.dumps(e, sort_keys=True) for e in led.entries()],
        "assets": {c: repr(led.asset(c)) for c in led.assets()},
        "vins": {vin(i): led.code_for_vin(vin(i)) for i in range(1, 8)},
    }


def fresh(path: Path) -> dict[str, Any]:
    with AssetLedger.open(path, read_only=True) as led:
        return state(led)


class Spy:
    """Counts the entries validated by ``LedgerLog`` (its replay and its
    appends) and by the audit's replay."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.opens = 0
        self.audits = 0
        real = log_mod._validate

        def in_log(*a: Any, **k: Any) -> Any:
            self.opens += 1
            return real(*a, **k)

        def in_audit(*a: Any, **k: Any) -> Any:
            self.audits += 1
            return real(*a, **k)

        mp.setattr(log_mod, "_validate", in_log)
        mp.setattr(auditor_mod, "_validate", in_audit)


def test_a_writer_adopts_the_audits_replay_and_hands_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = make(tmp_path / "l")
    want = fresh(tmp_path / "l")
    spy = Spy(monkeypatch)
    slot = Replay()
    assert audit(tmp_path / "l", replay=slot).ok
    assert slot.held
    assert spy.audits == want["size"]
    with AssetLedger.open(tmp_path / "l", replay=slot) as led:
        assert spy.opens == 0  # nothing replayed
        assert not slot.held  # taken
        assert state(led) == want
        led.record(
            "valuation_updated", codes[0], {"value_minor": 900}, actor=BANK, time=T0 + 2 * DAY
        )
        led.checkpoint()
        appended = spy.opens
    assert appended == 1  # the new entry's own validation
    assert slot.held  # the writer's final state, put back by close
    with AssetLedger.open(tmp_path / "l", read_only=True, replay=slot) as led:
        assert spy.opens == appended
        got = state(led)
    monkeypatch.undo()
    assert got == fresh(tmp_path / "l")
    assert got["size"] == want["size"] + 1


def test_an_entry_appended_since_the_audit_is_replayed_from_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = make(tmp_path / "l")
    slot = Replay()
    assert audit(tmp_path / "l", replay=slot).ok
    with AssetLedger.open(tmp_path / "l") as other:  # another writer, after the audit
        other.record(
            "valuation_updated", codes[1], {"value_minor": 7}, actor=BANK, time=T0 + 3 * DAY
        )
    want = fresh(tmp_path / "l")
    spy = Spy(monkeypatch)
    with AssetLedger.open(tmp_path / "l", replay=slot) as led:
        assert spy.opens == want["size"]  # the stale replay was not used
        assert state(led) == want


def _rewrite_last_record(path: Path, old: bytes, new: bytes) -> None:
    """Replaces ``old`` by ``new`` in the last record of entries.dat, with a
    valid length and CRC (docs/ledger.md: u32 length | payload | u32 CRC)."""
    data = (path / "entries.dat").read_bytes()
    pos, last = 0, 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        last, pos = pos, pos + 8 + n
    (n,) = struct.unpack_from(">I", data, last)
    payload = data[last + 4 : last + 4 + n]
    assert payload.count(old) == 1
    payload = payload.replace(old, new)
    rec = struct.pack(">I", len(payload)) + payload
    rec += struct.pack(">I", zlib.crc32(rec))
    (path / "entries.dat").write_bytes(data[:last] + rec)


def test_an_entry_rewritten_with_valid_framing_is_not_read_from_the_replay(
    tmp_path: Path,
) -> None:
    codes = make(tmp_path / "l")
    with AssetLedger.open(tmp_path / "l") as led:  # an entry after the last checkpoint
        led.record(
            "valuation_updated", codes[2], {"value_minor": 4321}, actor=BANK, time=T0 + 4 * DAY
        )
    slot = Replay()
    assert audit(tmp_path / "l", replay=slot).ok
    # same length, valid CRC: framing and the checkpoints cannot see it
    _rewrite_last_record(tmp_path / "l", b'"value_minor":4321', b'"value_minor":9321')
    want = fresh(tmp_path / "l")
    with AssetLedger.open(tmp_path / "l", read_only=True, replay=slot) as led:
        got = state(led)
        assert led.entry(led.size - 1)["data"]["value_minor"] == 9321  # what the file holds
    assert got == want
    assert not audit(tmp_path / "l").ok  # its signature no longer verifies


def test_a_replay_of_another_ledger_or_a_failed_audit_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(tmp_path / "a", origin="autolien.example/a")
    make(tmp_path / "b", origin="autolien.example/b")
    slot = Replay()
    assert audit(tmp_path / "a", replay=slot).ok
    want = fresh(tmp_path / "b")
    spy = Spy(monkeypatch)
    with AssetLedger.open(tmp_path / "b", read_only=True, replay=slot) as led:
        assert spy.opens == want["size"]
        assert state(led) == want
    monkeypatch.undo()
    # a signature that does not verify: the audit fails and hands nothing on
    data = (tmp_path / "b" / "entries.dat").read_bytes()
    text = data.decode("latin-1")
    at = text.rindex('"sig":"') + len('"sig":"')
    c = "A" if text[at] != "A" else "B"
    (tmp_path / "b" / "entries.dat").write_bytes(data[:at] + c.encode() + data[at + 1 :])
    # (the CRC now fails too: the audit reports it either way)
    slot = Replay()
    assert not audit(tmp_path / "b", replay=slot).ok
    assert not slot.held


def test_a_slot_is_used_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path / "l")
    slot = Replay()
    assert audit(tmp_path / "l", replay=slot).ok
    n = fresh(tmp_path / "l")["size"]
    spy = Spy(monkeypatch)
    first = AssetLedger.open(tmp_path / "l", read_only=True, replay=slot)
    assert spy.opens == 0
    second = AssetLedger.open(tmp_path / "l", read_only=True, replay=slot)
    assert spy.opens == n  # the first still holds it: nothing is shared
    first.close()
    second.close()
    with pytest.raises(ValueError, match="holds"):
        slot.put({}, 2, b"", log_mod._Books(), [])


def test_a_daily_run_replays_the_ledger_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pf = tmp_path / "pf"
    write_portfolio(pf, 8, 9, seed=5, anomaly_day=4, anomaly_share=0.5)
    assert main(["run", str(pf), "--json", "--quiet"]) == 0
    capsys.readouterr()
    with AssetLedger.open(pf / "ledger", read_only=True) as led:
        stored = led.size
    page = (pf / "report" / "index.html").read_bytes()
    spy = Spy(monkeypatch)
    assert main(["run", str(pf), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ledger"]["entries"] == stored  # a re-run adds nothing
    assert spy.audits == stored  # the audit still checks every entry
    assert spy.opens == 0  # the stage and the dashboard replay nothing again
    assert "ledger audit" in summary["timings_s"]
    monkeypatch.undo()
    # the same page as a run that replayed the files
    assert (pf / "report" / "index.html").read_bytes() == page
