"""The SVG of a fused track: well-formed, and one mark per fix, parked episode
and event of the result; `autolien fuse --plot` draws the same from the store."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from autolien.gnss import fuse
from autolien.gnss.plot import track_svg
from test_gnss_fusion import still_then

NS = {"s": "http://www.w3.org/2000/svg"}


def marks(svg: str) -> dict[str, list[ET.Element]]:
    root = ET.fromstring(svg)
    out: dict[str, list[ET.Element]] = {}
    for el in root.iter():
        cls = el.get("class")
        if cls:
            out.setdefault(cls, []).append(el)
    return out


def test_svg_has_a_mark_for_everything() -> None:
    table, _ = still_then(
        np.random.default_rng(5),
        [("park", 600, 0, 0), ("move", 120, 1.5, 0.0), ("park", 600, 0, 0)],
    )
    other, _ = still_then(np.random.default_rng(6), [("park", 300, 0.0, 0.0)])
    other = other.set_column(0, "vehicle_id", pa.array(["other"] * other.num_rows))
    result = fuse(pa.concat_tables([other, table]))
    fences = pa.table(
        {
            "fence_id": ["lot"],
            "kind": ["allowed"],
            "lon": [[121.39, 121.41, 121.41]],
            "lat": [[31.19, 31.19, 31.21]],
        }
    )
    m = marks(track_svg(result, vehicle="tow-1", fences=fences))
    track = result.track.filter(pa.compute.equal(result.track.column("vehicle_id"), "tow-1"))
    used = track.column("used").to_pylist()
    assert len(m["track"][0].get("points", "").split()) == sum(used)
    assert len(m["rejected"]) == used.count(False)
    assert len(m["parked"]) == 2
    assert len(m["event"]) == 1
    assert "displacement" in m["event"][0].find("s:title", NS).text  # type: ignore[union-attr]
    assert len(m["fence"]) == 1
    # The event marker sits at the fix that confirmed the move (event rows
    # index the whole track, where the other vehicle's 300 fixes come first).
    j = result.events.column("evidence_last_row")[0].as_py() - 300
    x, y = (float(v) for v in m["event"][0].get("d", "")[1:].split("L")[0].split(","))
    if used[j]:
        px, py = (
            float(v) for v in m["track"][0].get("points", "").split()[sum(used[:j])].split(",")
        )
        assert (x, y) == pytest.approx((px, py - 8), abs=0.11)
    else:
        assert any(f"row {j}:" in r.find("s:title", NS).text for r in m["rejected"])  # type: ignore[union-attr,operator]
    with pytest.raises(ValueError, match="nobody"):
        track_svg(result, vehicle="nobody")


def test_cli_plot(tmp_path: Path) -> None:
    from autolien.cli import main

    ubx = Path(__file__).parent / "data" / "gnss" / "gnss_imu" / "walk_0827_gnss_1730.ubx"
    db = str(tmp_path / "t.duckdb")
    svg = tmp_path / "walk.svg"
    assert main(["ingest", str(ubx), "--db", db, "--quiet", "--json"]) == 0
    assert main(["fuse", "--db", db, "--quiet", "--plot", str(svg)]) == 0
    m = marks(svg.read_text())
    assert len(m["track"][0].get("points", "").split()) == 1072
    assert main(["fuse", "--db", db, "--quiet", "--plot", str(svg), "--vehicle", "nobody"]) == 2
