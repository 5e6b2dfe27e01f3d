"""The `autolien ledger` CLI end to end: the documented session, as a script would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolien.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> object:
    assert main(["ledger", *args]) == code, capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else None


def test_documented_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = {}
    for name in ("bank-a.example", "bank-b.example", "bank-c.example", "bank-d.example"):
        k = run(capsys, "keygen", name)
        assert isinstance(k, dict)
        (tmp_path / f"{name}.json").write_text(json.dumps(k))
        keys[name] = k
    led = str(tmp_path / "LEDGER")
    init = run(
        capsys,
        "init",
        led,
        "--origin",
        "example.com/pledges",
        "--threshold",
        "3",
        "--time",
        "2026-01-01T00:00:00Z",
        *[a for n, k in keys.items() for a in ("--member", f"{n}={k['vkey']}")],
    )
    assert isinstance(init, dict)
    assert init["size"] == 1
    a_key = str(tmp_path / "bank-a.example.json")
    reg = run(
        capsys,
        "register",
        led,
        "--vin",
        "LSVAU218XN2183294",
        "--pledge-id",
        "P-1",
        "--loan-amount-minor",
        "10000000",
        "--key",
        a_key,
        "--time",
        "2026-01-02T08:00:00+08:00",
    )
    assert isinstance(reg, dict)
    code = reg["asset"]
    assert reg["event"]["time"] == "2026-01-02T00:00:00.000000Z"  # GMT+8 converted once, to UTC
    run(
        capsys,
        "event",
        led,
        "--asset",
        code,
        "--type",
        "valuation_updated",
        "--data",
        '{"value_minor": 12000000}',
        "--key",
        a_key,
        "--time",
        "2026-01-03T00:00:00Z",
    )
    run(
        capsys,
        "event",
        led,
        "--asset",
        code,
        "--type",
        "default_declared",
        "--data",
        '{"outstanding_minor": 9000000}',
        "--key",
        a_key,
        "--time",
        "2026-02-01T00:00:00Z",
    )
    req = run(
        capsys,
        "request-disposal",
        led,
        "--asset",
        code,
        "--reason",
        "default",
        "--time",
        "2026-02-02T00:00:00Z",
    )
    (tmp_path / "req.json").write_text(json.dumps(req))
    approvals = []
    for n in ("bank-b.example", "bank-c.example", "bank-d.example"):
        ap = run(
            capsys,
            "approve",
            "--request",
            str(tmp_path / "req.json"),
            "--key",
            str(tmp_path / f"{n}.json"),
        )
        (tmp_path / f"ap-{n}.json").write_text(json.dumps(ap))
        approvals += ["--approval", str(tmp_path / f"ap-{n}.json")]
    # Two approvals are not enough: a refusal, as JSON on stderr, exit 3.
    assert (
        main(
            [
                "ledger",
                "authorize-disposal",
                led,
                "--asset",
                code,
                "--request",
                str(tmp_path / "req.json"),
                *approvals[:4],
                "--key",
                a_key,
                "--time",
                "2026-02-03T00:00:00Z",
            ]
        )
        == 3
    )
    err = json.loads(capsys.readouterr().err)
    assert err["error"] == "AuthorizationError"
    run(
        capsys,
        "authorize-disposal",
        led,
        "--asset",
        code,
        "--request",
        str(tmp_path / "req.json"),
        *approvals,
        "--key",
        a_key,
        "--time",
        "2026-02-03T00:00:00Z",
    )
    ticks = run(capsys, "tick", led, "--now", "2026-02-20T00:00:00Z")
    assert isinstance(ticks, list)
    assert [t["event"]["time"] for t in ticks] == [
        "2026-02-10T00:00:00.000000Z"
    ]  # authorised + 7 days
    cp = run(capsys, "checkpoint", led)
    assert isinstance(cp, dict)
    proof = run(capsys, "prove", led, "--asset", code)
    assert isinstance(proof, dict)
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    ok = run(
        capsys, "verify", "--proof", str(tmp_path / "proof.json"), "--vkey", init["operator_vkey"]
    )
    assert isinstance(ok, dict)
    assert ok["ok"]
    assert len(ok["results"]) == 5  # pledge, valuation, default, authorisation, trigger
    # A tampered entry in the proof file fails verification with exit status 1.
    proof["proofs"][1]["entry"]["data"]["value_minor"] = 99
    proof["proofs"][1]["leaf_hash"] = "00" * 32
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    bad = run(
        capsys,
        "verify",
        "--proof",
        str(tmp_path / "bad.json"),
        "--vkey",
        init["operator_vkey"],
        code=1,
    )
    assert isinstance(bad, dict)
    assert [r["ok"] for r in bad["results"]] == [True, False, True, True, True]
    rep = run(capsys, "audit", led)
    assert isinstance(rep, dict)
    assert rep["ok"]
    assert rep["entries"] == 6
    shown = run(capsys, "show", led, "--asset", code)
    assert isinstance(shown, dict)
    assert shown["state"] == "disposal_authorized"
