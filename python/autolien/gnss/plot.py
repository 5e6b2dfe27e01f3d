"""A self-contained SVG of one vehicle's fused track: the path, rejected
fixes, parked positions with their uncertainty, moves out of them, and
geofences. No plotting library needed; open it in a browser (hover for
details)."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .fusion import FusionResult

__all__ = ["track_svg"]

_M_PER_DEG = 6378137.0 * math.pi / 180


def _for_vehicle(table: pa.Table, vehicle: str | None) -> pa.Table:
    if vehicle is None or "vehicle_id" not in table.column_names:
        return table
    return table.filter(pc.equal(table.column("vehicle_id"), vehicle))


def track_svg(
    result: FusionResult,
    *,
    vehicle: str | None = None,
    fences: pa.Table | None = None,
    size: int = 800,
) -> str:
    """The SVG text for ``vehicle`` (default: the track's first vehicle)."""
    track = result.track
    if track.num_rows == 0:
        raise ValueError("the track is empty")
    if vehicle is None:
        vehicle = track.column("vehicle_id")[0].as_py()
    # fuse() returns each vehicle's rows contiguously; event rows index the whole track.
    first_row = 0
    if vehicle is not None:
        mask = pc.equal(track.column("vehicle_id"), vehicle).to_numpy(zero_copy_only=False)
        hits = np.flatnonzero(np.asarray(mask, dtype=bool))
        if hits.size == 0:
            raise ValueError(f"no track rows for vehicle {vehicle!r}")
        first_row = int(hits[0])
        track = track.take(pa.array(hits))
    parked = _for_vehicle(result.parked, vehicle)
    events = _for_vehicle(result.events, vehicle)
    lat = track.column("lat").to_numpy(zero_copy_only=False).astype(float)
    lon = track.column("lon").to_numpy(zero_copy_only=False).astype(float)
    used = np.array(track.column("used").to_pylist(), dtype=bool)
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        raise ValueError("no finite positions to draw")
    lat0, lon0 = float(np.mean(lat[ok])), float(np.mean(lon[ok]))
    kx = _M_PER_DEG * math.cos(math.radians(lat0))

    def xy(la: float, lo: float) -> tuple[float, float]:
        return (lo - lon0) * kx, (la - lat0) * _M_PER_DEG

    e, n = (lon - lon0) * kx, (lat - lat0) * _M_PER_DEG
    span = max(float(np.ptp(e[ok])), float(np.ptp(n[ok])), 1.0) * 1.1
    cx, cy = float(np.mean([e[ok].min(), e[ok].max()])), float(np.mean([n[ok].min(), n[ok].max()]))
    scale = size / span

    def px(ee: float, nn: float) -> str:
        return f"{(ee - cx) * scale + size / 2:.1f},{size / 2 - (nn - cy) * scale:.1f}"

    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 40}" '
            f'viewBox="0 0 {size} {size + 40}" font-family="sans-serif" font-size="12">'
        ),
        f'<rect width="{size}" height="{size + 40}" fill="white"/>',
    ]
    if fences is not None:
        for fid, kind, flon, flat in zip(
            fences.column("fence_id").to_pylist(),
            fences.column("kind").to_pylist()
            if "kind" in fences.column_names
            else ["allowed"] * fences.num_rows,
            fences.column("lon").to_pylist(),
            fences.column("lat").to_pylist(),
            strict=True,
        ):
            pts = " ".join(px(*xy(la, lo)) for lo, la in zip(flon, flat, strict=True))
            colour = "#2a9d8f" if kind == "allowed" else "#e63946"
            out.append(
                f'<polygon class="fence" points="{pts}" fill="{colour}" fill-opacity="0.12" '
                f'stroke="{colour}"><title>{escape(str(fid))} ({escape(str(kind))})</title></polygon>'
            )
    path = " ".join(px(e[i], n[i]) for i in np.flatnonzero(used & ok))
    out.append(
        f'<polyline class="track" points="{path}" fill="none" stroke="#264653" stroke-width="1.2"/>'
    )
    for i in np.flatnonzero(~used & ok):
        x, y = (float(v) for v in px(e[i], n[i]).split(","))
        reason = track.column("reason")[int(i)].as_py()
        out.append(
            f'<path class="rejected" d="M{x - 3},{y - 3}L{x + 3},{y + 3}M{x - 3},{y + 3}L{x + 3},{y - 3}" '
            f'stroke="#e63946"><title>row {i}: {escape(reason)}</title></path>'
        )
    for row in parked.to_pylist():
        x, y = (float(v) for v in px(*xy(row["lat"], row["lon"])).split(","))
        r = max(3 * math.hypot(row["sigma_e_m"], row["sigma_n_m"]) * scale, 5.0)
        out.append(
            f'<circle class="parked" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#457b9d" fill-opacity="0.35" '
            f'stroke="#1d3557"><title>parked {row["start"]:%Y-%m-%d %H:%M:%S} to {row["end"]:%H:%M:%S}, '
            f"{row['n_fixes']} fixes, sigma {row['sigma_e_m'] * 100:.1f}/{row['sigma_n_m'] * 100:.1f} cm</title></circle>"
        )
    for row in events.to_pylist():
        j = row["evidence_last_row"] - first_row
        if not (0 <= j < track.num_rows and ok[j]):
            continue
        x, y = (float(v) for v in px(e[j], n[j]).split(","))
        out.append(
            f'<path class="event" d="M{x},{y - 8}L{x + 7},{y + 5}L{x - 7},{y + 5}Z" fill="#f4a261" stroke="#9c6644">'
            f"<title>{escape(row['kind'])} at {row['time']:%Y-%m-%d %H:%M:%S}: {row['distance_m']:.2f} m "
            f"(sigma {row['sigma_m']:.2f} m), evidence rows {row['evidence_first_row']}-{row['evidence_last_row']}"
            "</title></path>"
        )
    # A scale bar of a round length.
    bar = 10 ** math.floor(math.log10(span / 4))
    out.append(
        f'<path d="M10,{size + 25}h{bar * scale:.1f}" stroke="black" stroke-width="3"/>'
        f'<text x="{bar * scale + 16:.1f}" y="{size + 29}">{bar:g} m</text>'
        f'<text x="{size - 10}" y="{size + 29}" text-anchor="end">{escape(str(vehicle))}: '
        f"{int(used.sum())} fixes used, {int((~used).sum())} rejected, {parked.num_rows} parked, "
        f"{events.num_rows} events</text>"
    )
    out.append("</svg>")
    return "\n".join(out)
