"""The dashboard's ledger rows: each vehicle's lifecycle entries with their
inclusion proofs checked. The store's reads for the page are the store
adapter's (``autolien.store.dashboard``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ledger.log import Replay

__all__ = ["ledger_rows"]


def ledger_rows(
    ledger_dir: Path | None, vins: dict[str, str], replay: Replay | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The ledger history of each vehicle (by its VIN's live pledge), each
    entry's inclusion proof checked against the current root; {} without a
    ledger. ``replay``: a :class:`~autolien.ledger.log.Replay` slot to open
    the ledger with (the pipeline's, filled by its ledger stage)."""
    from ..ledger import AssetLedger, verify_inclusion  # noqa: PLC0415
    from ..ledger.assets import CONFIG  # noqa: PLC0415

    if ledger_dir is None or not (ledger_dir / CONFIG).exists():
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    led = AssetLedger.open(ledger_dir, read_only=True, replay=replay)
    try:
        size, root = led.size, led.root()
        for vid, vin in vins.items():
            code = led.code_for_vin(vin)
            if code is None:
                continue
            rows = []
            for e in led.history(code):
                seq = e["seq"]
                ok = verify_inclusion(led.leaf_hash(seq), seq, size, led.inclusion_proof(seq), root)
                rows.append(
                    {
                        "seq": seq,
                        "type": e["type"],
                        "time": e["time"],
                        "proof": "verified" if ok else "FAILED",
                    }
                )
            out[vid] = rows
    finally:
        led.close()
    return out
