"""The `autolien ledger` CLI end to end: the documented session, as a script would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolien.cli import main
from autolien.ledger.identity import asset_code


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


# --- issue 15, point 4: exit codes, reasons, malformed input, retries ------------------

T = "2026-01-02T00:00:00Z"


def _session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """A ledger with one defaulted pledge, keys on disk and a disposal request file."""
    keys = {}
    for name in ("bank-a.example", "bank-b.example"):
        k = run(capsys, "keygen", name)
        assert isinstance(k, dict)
        (tmp_path / f"{name}.json").write_text(json.dumps(k))
        keys[name] = k["vkey"]
    led = str(tmp_path / "LEDGER")
    init = run(
        capsys,
        "init",
        led,
        "--origin",
        "example.com/pledges",
        "--threshold",
        "1",
        "--time",
        "2026-01-01T00:00:00Z",
        *[a for n, v in keys.items() for a in ("--member", f"{n}={v}")],
    )
    assert isinstance(init, dict)
    key = str(tmp_path / "bank-a.example.json")
    reg = run(
        capsys, "register", led, "--vin", "LSVAU218XN2183294", "--pledge-id", "P-1",
        "--loan-amount-minor", "100", "--key", key, "--time", T,
    )  # fmt: skip
    assert isinstance(reg, dict)
    run(
        capsys, "event", led, "--asset", reg["asset"], "--type", "default_declared",
        "--data", "{\"outstanding_minor\": 50}", "--key", key, "--time", "2026-01-03T00:00:00Z",
    )  # fmt: skip
    req = run(
        capsys, "request-disposal", led, "--asset", reg["asset"], "--reason", "d", "--time", T
    )
    (tmp_path / "req.json").write_text(json.dumps(req))
    run(capsys, "checkpoint", led)
    return {
        "dir": led,
        "key": key,
        "asset": reg["asset"],
        "vkey": init["operator_vkey"],
        "req": str(tmp_path / "req.json"),
    }


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    code = main(["ledger", *args])
    cap = capsys.readouterr()
    assert code == 2, (args, cap.err)
    assert "Traceback" not in cap.err
    assert cap.out == ""
    err = json.loads(cap.err)
    assert set(err) == {"error", "message"}
    return err  # type: ignore[no-any-return]


def test_malformed_input_is_a_usage_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _session(tmp_path, capsys)
    event = ["event", s["dir"], "--asset", s["asset"], "--type", "alert_raised", "--key", s["key"]]
    assert "JSON object, got a list" in usage_error(capsys, *event, "--data", "[1]")["message"]
    assert "JSON object, got null" in usage_error(capsys, *event, "--data", "null")["message"]
    assert "not valid JSON" in usage_error(capsys, *event, "--data", "{")["message"]
    (tmp_path / "list.json").write_text("[1, 2]")
    usage_error(capsys, "approve", "--request", str(tmp_path / "list.json"), "--key", s["key"])
    (tmp_path / "other.json").write_text('{"type": "anything", "sign": "me"}')
    usage_error(capsys, "approve", "--request", str(tmp_path / "other.json"), "--key", s["key"])
    auth = ["authorize-disposal", s["dir"], "--asset", s["asset"], "--request", s["req"]]
    usage_error(capsys, *auth, "--approval", str(tmp_path / "list.json"), "--key", s["key"])
    assert (
        "--seq must be 0 or more"
        in usage_error(capsys, "prove", s["dir"], "--seq", "-1")["message"]
    )
    (tmp_path / "proof.json").write_text('{"proofs": []}')
    msg = usage_error(
        capsys, "verify", "--proof", str(tmp_path / "proof.json"), "--vkey", s["vkey"]
    )
    assert "checkpoint is missing" in msg["message"]
    # Nothing of that reached the ledger: consortium, pledge, default.
    rep = run(capsys, "audit", s["dir"])
    assert isinstance(rep, dict)
    assert rep["entries"] == 3


def test_error_messages_keep_their_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _session(tmp_path, capsys)
    err = usage_error(capsys, "init", str(tmp_path / "L2"), "--origin", "o", "--threshold", "1",
                      "--member", "bogus")  # fmt: skip
    assert err["message"].endswith("got 'bogus'")
    unknown = asset_code("LSVAU218XN2183294", "P-999")
    code = main(["ledger", "show", s["dir"], "--asset", unknown])
    err = json.loads(capsys.readouterr().err)
    assert (code, err["error"]) == (3, "KeyError")
    assert err["message"] == f"unknown asset code {unknown}"  # no quotes added or lost


def test_verification_failures_exit_1_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _session(tmp_path, capsys)
    proof = run(capsys, "prove", s["dir"], "--asset", s["asset"])
    assert isinstance(proof, dict)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    good = run(capsys, "verify", "--proof", str(path), "--vkey", s["vkey"])
    assert isinstance(good, dict)
    assert good["ok"]
    other = run(capsys, "keygen", "ledger-operator")  # the operator's name, another key
    assert isinstance(other, dict)
    bad = run(capsys, "verify", "--proof", str(path), "--vkey", other["vkey"], code=1)
    assert isinstance(bad, dict)
    assert bad["ok"] is False
    assert "no signature from a known key" in bad["reason"]
    # A signature byte changed: the right key, a bad signature.
    note = proof["checkpoint"]
    sig_at = note.rindex(" ") + 10
    proof["checkpoint"] = note[:sig_at] + ("A" if note[sig_at] != "A" else "B") + note[sig_at + 1 :]
    path.write_text(json.dumps(proof))
    bad = run(capsys, "verify", "--proof", str(path), "--vkey", s["vkey"], code=1)
    assert isinstance(bad, dict)
    assert bad["ok"] is False
    assert "does not verify" in bad["reason"]


def test_event_ids_make_retries_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = _session(tmp_path, capsys)
    ev = ["event", s["dir"], "--asset", s["asset"], "--type", "alert_raised", "--key", s["key"]]
    ev += ["--time", "2026-01-04T00:00:00Z"]  # before the 7-day trigger is due
    first = run(capsys, *ev, "--data", '{"alert_id": "a1", "level": "red"}', "--id", "job-7")
    again = run(
        capsys, *ev, "--data", '{"alert_id": "a1", "level": "red"}', "--id", "job-7"
    )  # a retry, later
    assert isinstance(first, dict)
    assert isinstance(again, dict)
    assert first == again
    assert first["seq"] == 3
    code = main(["ledger", *ev, "--data", '{"alert_id": "a2", "level": "red"}', "--id", "job-7"])
    err = json.loads(capsys.readouterr().err)
    assert (code, err["error"]) == (3, "IdempotencyConflictError")
    rep = run(capsys, "audit", s["dir"])
    assert isinstance(rep, dict)
    assert (rep["ok"], rep["entries"]) == (True, 4)


def test_a_closed_stdout_neither_fails_nor_doubles_a_retried_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    s = _session(tmp_path, capsys)
    argv = [
        sys.executable, "-c", "import sys; from autolien.cli import main; sys.exit(main(sys.argv[1:]))",
        "ledger", "event", s["dir"], "--asset", s["asset"], "--type", "alert_raised",
        "--data", '{"alert_id": "a1", "level": "red"}', "--key", s["key"], "--id", "alert-a1",
        "--time", "2026-01-04T00:00:00Z",
    ]  # fmt: skip
    for _ in range(2):  # the script retries, as a script that saw no output would
        r, w = os.pipe()
        os.close(r)  # the reader is gone before anything is written
        try:
            proc = subprocess.run(argv, stdout=w, stderr=subprocess.PIPE, text=True, check=False)
        finally:
            os.close(w)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
    rep = run(capsys, "audit", s["dir"])
    assert isinstance(rep, dict)
    assert (rep["ok"], rep["entries"]) == (True, 4)  # recorded once


def test_argument_errors_are_json_with_the_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ledger", "prove", "somewhere", "--seq", "five"])
    assert info.value.code == 2
    err = json.loads(capsys.readouterr().err)
    assert err["error"] == "UsageError"
    assert "--seq" in err["message"]
