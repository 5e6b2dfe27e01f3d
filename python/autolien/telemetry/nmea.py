"""NMEA 0183 and u-blox UBX from the BeiDou+GPS RTK receiver.

``decode_nmea(data)`` takes one byte stream in which NMEA sentences (GGA, RMC,
GST, GSA, VTG from any talker: GP, GN, BD, GB, GL, GA, ...) and UBX messages
(NAV-PVT) are interleaved. It returns a :class:`DecodeResult` with:

* ``table``: one row per epoch, in :data:`FIX_SCHEMA`. NMEA sentences that
  carry the same time of day form one epoch (GSA and VTG join the current
  one), and each NAV-PVT is an epoch of its own.
* ``messages``: every sentence or UBX message, used or not (GSV, ESF-MEAS, ...
  are listed with ``used = false``);
* ``rejects``: junk between messages (counted, with its bytes), bad
  checksums, sentences without a checksum, malformed fields and truncated
  input.

Column rules:

* ``quality`` is the GGA fix quality: 0 invalid, 1 single, 2 DGPS, 4 RTK
  fixed, 5 RTK float, 6 dead reckoning. It is read from GGA field 6 or mapped
  from NAV-PVT: fixType 1 (dead reckoning only) gives 6; otherwise carrSoln 2
  gives 4, carrSoln 1 gives 5, diffSoln gives 2, else 1. A GNSS+DR fix
  (fixType 4) is classed by its GNSS part, as receivers write it in GGA and as
  gpsd reports it; ``fix_type`` keeps the raw value.
  It is never read from the RMC mode letter, which receivers misreport (kept
  as ``rmc_mode``). It is null for an epoch with neither GGA nor NAV-PVT.
* ``time`` is UTC. NMEA times of day take their date from RMC (or the last
  known date, rolling over at midnight); before any date is known the time is
  null.
* ``altitude_m`` is above mean sea level and ``height_m`` above the ellipsoid.
* ``sigma_n_m``, ``sigma_e_m`` and ``sigma_u_m`` are the GST standard
  deviations. For NAV-PVT they are hAcc (north and east alike) and vAcc.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ._common import TIME_TYPE, DecodeResult, binary_array, nullable, read_input, rejects_table

__all__ = ["FIX_SCHEMA", "REASONS", "decode_nmea"]

REASONS = {1: "junk", 2: "bad_checksum", 3: "no_checksum", 4: "bad_field", 5: "truncated"}

FIX_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("time", TIME_TYPE),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("altitude_m", pa.float64()),
        pa.field("height_m", pa.float64()),
        pa.field("speed_kmh", pa.float64()),
        pa.field("heading_deg", pa.float64()),
        pa.field("quality", pa.uint8()),
        pa.field("num_sats", pa.uint8()),
        pa.field("hdop", pa.float64()),
        pa.field("pdop", pa.float64()),
        pa.field("sigma_n_m", pa.float64()),
        pa.field("sigma_e_m", pa.float64()),
        pa.field("sigma_u_m", pa.float64()),
        pa.field("diff_age_s", pa.float64()),
        pa.field("fix_type", pa.uint8()),
        pa.field("carr_soln", pa.uint8()),
        pa.field("rmc_status", pa.string()),
        pa.field("rmc_mode", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.uint64(), nullable=False),
        pa.field("length", pa.uint32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("used", pa.bool_(), nullable=False),
    ]
)


def _letters(codes: np.ndarray) -> pa.Array:
    # One ASCII letter per row (0 = absent), without a Python loop.
    return pa.array(codes.view("S1"), pa.binary(1), mask=codes == 0).cast(pa.string())


def decode_nmea(data: Any, *, vehicle_id: str | None = None) -> DecodeResult:
    """Decodes NMEA and UBX (bytes, a uint8 array or a file path).

    ``vehicle_id`` fills the column of that name (receivers do not send one).
    """
    raw = _core.decode_nmea(read_input(data))
    f, m = raw["fixes"], raw["messages"]
    n = len(f["offset"])
    t = f["time_us"]
    table = pa.table(
        {
            "vehicle_id": pa.repeat(pa.scalar(vehicle_id, pa.string()), n),
            "time": pa.array(t, mask=t == np.iinfo(np.int64).min).cast(TIME_TYPE),
            **{
                k: nullable(f[k], None, pa.float64())
                for k in ("lat", "lon", "altitude_m", "height_m", "speed_kmh", "heading_deg")
            },
            **{k: nullable(f[k], -1, pa.uint8()) for k in ("quality", "num_sats")},
            **{
                k: nullable(f[k], None, pa.float64())
                for k in ("hdop", "pdop", "sigma_n_m", "sigma_e_m", "sigma_u_m", "diff_age_s")
            },
            **{k: nullable(f[k], -1, pa.uint8()) for k in ("fix_type", "carr_soln")},
            "rmc_status": _letters(f["rmc_status"]),
            "rmc_mode": _letters(f["rmc_mode"]),
            "source": pa.DictionaryArray.from_arrays(
                pa.array(f["source"] - 1, pa.int8()), pa.array(["nmea", "ubx"])
            ).cast(pa.string()),
            "offset": pa.array(f["offset"], pa.uint64()),
        },
        schema=FIX_SCHEMA,
    )
    messages = pa.table(
        {
            "offset": pa.array(m["offset"], pa.uint64()),
            "length": pa.array(m["length"], pa.uint32()),
            "kind": binary_array(m["kind"], pa.string()),
            "used": pa.array(m["used"].astype(bool)),
        },
        schema=MESSAGE_SCHEMA,
    )
    return DecodeResult(
        table=table, rejects=rejects_table(raw["rejects"], REASONS), messages=messages
    )
