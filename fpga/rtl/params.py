"""Parameters of perm_entropy.v for an order and window: T(NP) from the
table (rtl/nlog2n.hex, generated from the core) and the reciprocal M and
shift SH that make floor(num / NP) = (num * M) >> SH exact for every
numerator num < 2^NUM_BITS (Granlund and Montgomery, 1994: with
SH = NUM_BITS + ceil(log2 NP) and M = ceil(2^SH / NP), M * NP - 2^SH < NP
<= 2^(SH - NUM_BITS), so the error term stays below one unit)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def table() -> list[int]:
    return [int(x, 16) for x in (HERE / "nlog2n.hex").read_text().split()]


def perm_params(order: int, window: int) -> dict[str, int]:
    if order not in (3, 4, 5) or window & (window - 1) or not 16 <= window <= 1024:
        raise ValueError("order 3..5 and a power-of-two window 16..1024")
    np_ = window - order + 1
    t_np = table()[np_]
    num_bits = t_np.bit_length()
    sh = num_bits + (np_ - 1).bit_length()
    m = -(-(1 << sh) // np_)
    assert m * np_ - (1 << sh) < (1 << (sh - num_bits))
    assert m < (1 << 48)
    return {"ORDER": order, "WINDOW": window, "NUM_BITS": num_bits, "T_NP": t_np, "M": m, "SH": sh}


def dhex(window: int, outdir: Path) -> Path:
    """The first ``window`` table differences as their own hex file (the ROM
    of perm_entropy.v holds exactly WINDOW entries)."""
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"dnlog2n_w{window}.hex"
    lines = (HERE / "dnlog2n.hex").read_text().splitlines()[:window]
    path.write_text("\n".join(lines) + "\n")
    return path
