"""cocotb testbench of perm_entropy.v: float32 samples in, the core's
fixed-point rolling permutation entropy (fixed_point=True) out, bit for bit.
GOLDEN_SAMPLES / GOLDEN_VALUES name the files; GOLDEN_LIMIT caps the count."""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


@cocotb.test()
async def entropy_matches_golden(dut) -> None:  # type: ignore[no-untyped-def]
    limit = int(os.environ.get("GOLDEN_LIMIT", "0")) or None
    x = np.fromfile(os.environ["GOLDEN_SAMPLES"], dtype="<u4")[:limit]
    want = np.fromfile(os.environ["GOLDEN_VALUES"], dtype="<u8")[:limit]
    cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    got: list[int] = []

    async def collect() -> None:
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.out_valid.value == 1:
                raw = dut.out_data.value
                if not raw.is_resolvable:
                    dut._log.error("unresolved output %d: %s", len(got), raw.binstr)
                    got.append(-1)
                else:
                    got.append(int(raw))

    cocotb.start_soon(collect())
    for v in x:  # one sample per cycle
        dut.in_valid.value = 1
        dut.in_data.value = int(v)
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    for _ in range(20):
        await RisingEdge(dut.clk)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != int(w)]
    dut._log.info("%d samples, %d values, %d mismatches", len(x), len(got), len(bad))
    assert len(got) == len(x), f"{len(got)} values for {len(x)} samples"
    assert not bad, f"values differ at {bad[:5]}: got {got[bad[0]]:#x} want {int(want[bad[0]]):#x}"
