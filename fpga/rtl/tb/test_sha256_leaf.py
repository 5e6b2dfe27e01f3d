"""cocotb testbench of sha256_leaf.v: the golden records in, the RFC 6962
leaf hashes (autolien.ledger and the RFC 6962 reference tree) out, bit for
bit. GOLDEN_RECORDS / GOLDEN_DIGESTS name the files; GOLDEN_LIMIT caps the
count (the quick run in make test)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


def records(path: Path) -> list[bytes]:
    b = path.read_bytes()
    out, p = [], 0
    while p < len(b):
        (n,) = struct.unpack_from("<I", b, p)
        out.append(b[p + 4 : p + 4 + n])
        p += 4 + n
    return out


@cocotb.test()
async def leaf_hashes_match_golden(dut) -> None:  # type: ignore[no-untyped-def]
    limit = int(os.environ.get("GOLDEN_LIMIT", "0")) or None
    recs = records(Path(os.environ["GOLDEN_RECORDS"]))[:limit]
    md = Path(os.environ["GOLDEN_DIGESTS"]).read_bytes()
    want = [md[32 * i : 32 * i + 32] for i in range(len(recs))]
    cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_last.value = 0
    dut.in_empty.value = 0
    dut.in_data.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    got: list[bytes] = []

    async def collect() -> None:
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.out_valid.value == 1:
                got.append(int(dut.out_hash.value).to_bytes(32, "big"))

    cocotb.start_soon(collect())
    cycles = 0
    for r in recs:
        beats = [(x, i == len(r) - 1, False) for i, x in enumerate(r)] or [(0, True, True)]
        for x, last, empty in beats:
            dut.in_valid.value = 1
            dut.in_data.value = x
            dut.in_last.value = int(last)
            dut.in_empty.value = int(empty)
            while True:
                await RisingEdge(dut.clk)
                cycles += 1
                if dut.in_ready.value == 1:
                    break
        dut.in_valid.value = 0
    dut.in_valid.value = 0
    for _ in range(400):
        if len(got) == len(recs):
            break
        await RisingEdge(dut.clk)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w]
    dut._log.info(
        "%d records, %d digests, %d mismatches, %d input cycles",
        len(recs),
        len(got),
        len(bad),
        cycles,
    )
    assert len(got) == len(recs), f"{len(got)} digests for {len(recs)} records"
    assert not bad, (
        f"digests differ at {bad[:5]}: got {got[bad[0]].hex()} want {want[bad[0]].hex()}"
    )
