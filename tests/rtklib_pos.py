"""Reading RTKLIB solution files (.pos) as fix tables, for the tests that
replay real logs (tests/data/gnss, SOURCES.md). Times stay GPS time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

GPS_EPOCH = dt.datetime(1980, 1, 6, tzinfo=dt.UTC)
RTKLIB_Q = {1: 4, 2: 5, 4: 2, 5: 1}  # RTKLIB's Q column to the GGA quality code


def read_pos(path: Path) -> pa.Table:
    """An RTKLIB .pos file (calendar or week/seconds time) as a fix table."""
    times, values = [], []
    for line in path.read_text().splitlines():
        if line.startswith("%") or not line.strip():
            continue
        f = line.split()
        if "/" in f[0]:
            t = dt.datetime.strptime(f"{f[0]} {f[1]}", "%Y/%m/%d %H:%M:%S.%f").replace(
                tzinfo=dt.UTC
            )
        else:
            t = GPS_EPOCH + dt.timedelta(weeks=int(f[0]), seconds=float(f[1]))
        times.append(t)
        values.append([float(x) for x in f[2:10]])
    a = np.array(values)
    return pa.table(
        {
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "lat": a[:, 0],
            "lon": a[:, 1],
            "height_m": a[:, 2],
            "quality": pa.array([RTKLIB_Q.get(int(q), 0) for q in a[:, 3]], pa.uint8()),
            "sigma_n_m": a[:, 5],
            "sigma_e_m": a[:, 6],
            "sigma_u_m": a[:, 7],
        }
    )
