"""A simulated loan book and the T-Box logs of its vehicles, on disk.

``write_portfolio(out_dir, ...)`` writes:

* ``loan_book.parquet``: one row per pledged vehicle (VIN with a valid check
  digit, terminal number, make/model/year/fuel, loan and pledge date, region);
* ``telemetry/<YYYY-MM-DD>.jt808``: every terminal's JT/T 808 location reports
  (0x0200 with the mileage item) of that local day, as a gateway logs them;
* ``telemetry/<YYYY-MM-DD>.gb32960``: GB/T 32960 real-time frames of the EVs;
* ``rtk/<vehicle_id>/<YYYY-MM-DD>.nmea``: NMEA GGA/RMC/GST of the vehicles that
  also carry an RTK receiver (every ``rtk_every``-th), mixed fixed, float and
  single fixes;
* ``truth.parquet``: the injected anomalies (vehicle, kind, start, expected
  level), and ``defaults.parquet``: loans that default (for the ledger stage);
* ``market/listings.parquet``: a used-car platform's dated adverts for the
  catalogue's models over the 300 days before the simulated span and the span
  itself (make, model, year, mileage, price, ``listed_at``, ``delisted_at``),
  with a glut of the first model (adverts arriving 60% faster and selling 30%
  slower) over the last 28 days, for the market factor. Labelled
  ``simulated`` in every row. The "cn" feed also carries service records,
  priced by a known rule (``listing_rule``); the pipeline trains the CNY
  book's model on it.

Vehicles are simulated one at a time and appended to the day files, so memory
stays bounded by one vehicle whatever the fleet size. Deterministic for a seed.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..ledger.identity import vin_check_digit
from ..schemas import TIME_TYPE
from .behaviour import ANOMALIES, EPOCH, EXPECTED_LEVEL, simulate_vehicle
from .frames import gb32960_realtime, jt808_locations, nmea_sentences

__all__ = [
    "CATALOGUE",
    "PORTFOLIO_ANOMALIES",
    "PORTFOLIO_EXPECTED_LEVEL",
    "PortfolioSummary",
    "write_portfolio",
]

# The behaviour anomalies plus what only a portfolio's EV frames show: a
# battery module failing (SOH 15 points below its age's norm from then on).
PORTFOLIO_ANOMALIES = {**ANOMALIES, "battery": "battery_degradation"}
PORTFOLIO_EXPECTED_LEVEL = {**EXPECTED_LEVEL, "battery": "alert"}

# (make, model, fuel, WMI, transmission, engine litres, new price) per
# market. "uk" uses makes and models the shipped UK valuation model knows, so
# the demo's loans can be valued (GBP); "cn" is a Chinese-market book (CNY)
# that model cannot price.
CATALOGUES = {
    "uk": (
        ("ford", "Fiesta", "petrol", "WF0", "manual", 1.0, 17_000),
        ("vw", "Golf", "petrol", "WVW", "manual", 1.5, 25_000),
        ("bmw", "3 Series", "diesel", "WBA", "automatic", 2.0, 35_000),
        ("audi", "A3", "diesel", "WAU", "manual", 1.6, 27_000),
        ("toyota", "Yaris", "hybrid", "JTD", "automatic", 1.5, 20_000),
        ("mercedes", "C Class", "diesel", "WDD", "automatic", 2.1, 38_000),
        ("hyundai", "Tucson", "diesel", "KMH", "manual", 1.7, 26_000),
        ("skoda", "Octavia", "petrol", "TMB", "manual", 1.5, 22_000),
        ("vauxhall", "Corsa", "petrol", "W0L", "manual", 1.2, 15_000),
        ("bmw", "i3", "electric", "WBY", "automatic", 0.0, 33_000),
    ),
    "cn": (
        ("Volkswagen", "Lavida", "petrol", "LSV", "automatic", 1.5, 120_000),
        ("Toyota", "Corolla", "hybrid", "LVG", "automatic", 1.8, 140_000),
        ("Honda", "Accord", "petrol", "LHG", "automatic", 1.5, 200_000),
        ("BYD", "Qin PLUS EV", "electric", "LGX", "automatic", 0.0, 150_000),
        ("Tesla", "Model 3", "electric", "LRW", "automatic", 0.0, 260_000),
        ("Geely", "Emgrand", "petrol", "L6T", "manual", 1.5, 80_000),
        ("Buick", "GL8", "petrol", "LSG", "automatic", 2.0, 280_000),
        ("BYD", "Song PLUS DM-i", "hybrid", "LGX", "automatic", 1.5, 170_000),
    ),
}
CURRENCY = {"uk": "GBP", "cn": "CNY"}
CATALOGUE = CATALOGUES["cn"]
REGIONS = ("Shanghai", "Suzhou", "Hangzhou", "Nanjing", "Ningbo")


@dataclass
class PortfolioSummary:
    vehicles: int
    days: int
    frames: int
    bytes: int
    anomalies: dict[str, int]
    files: list[str]


def _vin(rng: np.random.Generator, wmi: str, year: int) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    year_code = "ABCDEFGHJKLMNPRSTVWXY123456789"[(year - 2010) % 30]
    vds = "".join(rng.choice(list(alphabet), 5))
    serial = "".join(rng.choice(list("0123456789"), 6))
    body = f"{wmi}{vds}0{year_code}{rng.choice(list(alphabet))}{serial}"
    return body[:8] + vin_check_digit(body) + body[9:]


def _heading(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    d_e = np.diff(lon, prepend=lon[:1]) * math.cos(math.radians(31.2))
    d_n = np.diff(lat, prepend=lat[:1])
    return np.mod(np.degrees(np.arctan2(d_e, d_n)), 360.0)


def _battery(
    t: np.ndarray, speed: np.ndarray, km: np.ndarray, soh: np.ndarray
) -> dict[str, np.ndarray]:
    """SOC falls with distance (15 kWh/100 km of a 60 kWh pack scaled by
    SOH) and is charged back to 90% when parked overnight below 60%."""
    cap = 60.0 * soh
    soc = np.empty(t.size)
    level = 80.0
    dkm = np.diff(km, prepend=km[:1])
    local_h = ((t + 8 * 3600) % 86400) / 3600
    charging = np.zeros(t.size, bool)
    for i in range(t.size):
        level -= 15.0 * dkm[i] / 100.0 / cap[i] * 100.0
        if (
            speed[i] == 0
            and (local_h[i] >= 22 or local_h[i] < 6)
            and level < 90.0
            and (level < 60.0 or charging[i - 1])
        ):
            level = min(90.0, level + 7.0 * (600 / 3600) / cap[i] * 100.0)
            charging[i] = True
        level = max(level, 3.0)
        soc[i] = level
    volt = 96 * (3.3 + 0.9 * soc / 100)
    current = np.where(charging, -7000.0 / volt, 15.0 * speed / 100.0 * 1000.0 / volt)
    spread = 0.01 + 0.15 * (1.0 - soh)
    max_cell = 3.3 + 0.9 * soc / 100
    return {
        "soc": soc,
        "volt": volt,
        "current": current,
        "max_cell": max_cell,
        "min_cell": max_cell - spread,
        "charging": charging,
    }


def _ev_frames(
    vin: str,
    t: np.ndarray,
    speed: np.ndarray,
    km: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    batt: dict[str, np.ndarray],
    sel: np.ndarray,
) -> bytes:
    """GB/T 32960 real-time frames of the selected rows (``batt`` from
    ``_battery``): what an EV sends while driving or charging."""
    n = int(np.count_nonzero(sel))
    return gb32960_realtime(
        vin,
        t[sel],
        speed_kmh=speed[sel],
        odometer_km=km[sel],
        pack_voltage_v=batt["volt"][sel],
        pack_current_a=batt["current"][sel],
        soc_pct=batt["soc"][sel],
        lat=lat[sel],
        lon=lon[sel],
        max_cell_v=batt["max_cell"][sel],
        min_cell_v=batt["min_cell"][sel],
        max_temp_c=np.full(n, 30.0),
        min_temp_c=np.full(n, 26.0),
        charging_status=np.where(batt["charging"][sel], 1, 3),
    )


def _rtk_day(
    rng: np.random.Generator,
    t: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    speed: np.ndarray,
    heading: np.ndarray,
) -> str:
    """An RTK receiver's GGA/RMC/GST log of one day: fixed, float and single
    fixes whose reported sigma is half the real error, as receivers' are."""
    q = rng.choice(np.array([4, 5, 1]), t.size, p=[0.6, 0.25, 0.15])
    sigma = np.select([q == 4, q == 5], [0.02, 0.3], 2.5)
    err = rng.normal(0, 2 * sigma[:, None], (t.size, 2))
    la = lat + err[:, 0] / 111_195.0
    lo = lon + err[:, 1] / (111_195.0 * math.cos(math.radians(31.2)))
    return nmea_sentences(
        t, la, lo, np.full(t.size, 20.0), q, 18, np.where(q == 1, 1.2, 0.7), speed, heading, sigma
    )


# The feed starts this far back so that its stock of adverts is steady (ten
# mean market times) before any norm window a run uses.
MARKET_HISTORY_DAYS = 300
GLUT_DAYS = 28


# The service records' known effect on price (``service=True``): a car with
# an accident on its record sells ACCIDENT_FACTOR of one without.
ACCIDENT_FACTOR = 0.88
ACCIDENT_SHARE = 0.1


def listing_rule(new_price: np.ndarray, age: np.ndarray, accident: np.ndarray) -> np.ndarray:
    """The simulated feed's pricing rule without its noise: the new price,
    15% a year off, times ACCIDENT_FACTOR for a car with an accident."""
    return np.asarray(
        new_price * 0.85 ** np.maximum(age, 0) * np.where(accident > 0, ACCIDENT_FACTOR, 1.0)
    )


def _listings(
    seed: int, catalogue: tuple[tuple[Any, ...], ...], days: int, *, service: bool = False
) -> tuple[pa.Table, str]:
    """Dated adverts: per model, Poisson arrivals (12 a day) of cars 0-14
    years old, on the market for an exponential time (mean 30 days); prices
    from the new price, 15% a year off, with 8% noise. The first model's
    adverts arrive 1.6x as fast and stay 1.3x as long over the last
    GLUT_DAYS days (a seasonal glut). Every row says ``simulated``.

    ``service``: the adverts also carry service records (4S-dealer data:
    ``service_count`` about one a year of age, ``km_since_service`` 0-15,000,
    ``accident`` on 10%), and an accident lowers the price to
    ACCIDENT_FACTOR (``listing_rule``); drawn from their own stream, so the
    other columns are those of ``service=False``."""
    rng = np.random.default_rng([seed, 99])
    t0 = EPOCH - MARKET_HISTORY_DAYS * 86400
    end = EPOCH + days * 86400
    glut_from = end - GLUT_DAYS * 86400
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("make", "model", "year", "mileage_km", "price", "listed", "gone")
    }
    seen: set[tuple[str, str]] = set()
    glut = ""
    for make, model, _fuel, _wmi, _gear, _eng, price in catalogue:
        if (make, model) in seen:
            continue
        seen.add((make, model))
        first = len(seen) == 1
        glut = f"{make} {model}" if first else glut
        span = end - t0
        n = int(rng.poisson(12 * span / 86400 * (1.3 if first else 1.0)))
        listed = np.sort(rng.uniform(t0, end, n))
        if first:
            # thin the pre-glut arrivals back to the base rate
            keep = (listed >= glut_from) | (rng.uniform(size=n) < 1 / 1.3)
            extra = rng.uniform(glut_from, end, int(rng.poisson(12 * 0.6 * GLUT_DAYS)))
            listed = np.sort(np.concatenate([listed[keep], extra]))
            n = listed.size
        stay = rng.exponential(30 * 86400, n)
        if first:
            stay = np.where(listed >= glut_from, stay * 1.3, stay)
        age = rng.uniform(0, 14, n)
        list_year = 1970 + listed / (365.25 * 86400)
        year = np.floor(list_year - age).astype(np.int32)
        cols["make"].append(np.full(n, make, object))
        cols["model"].append(np.full(n, model, object))
        cols["year"].append(year)
        cols["mileage_km"].append(np.round(age * rng.uniform(8_000, 20_000, n), -2))
        cols["price"].append(
            np.round(price * 0.85 ** np.maximum(age, 0) * rng.lognormal(0, 0.08, n), -1)
        )
        cols["listed"].append(listed)
        cols["gone"].append(listed + stay)
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(cat["listed"], kind="stable")
    cat = {k: v[order] for k, v in cat.items()}
    gone = cat["gone"]
    records: dict[str, pa.Array] = {}
    if service:
        srng = np.random.default_rng([seed, 98])
        n_all = order.size
        age_all = (cat["listed"] / (365.25 * 86400) + 1970) - cat["year"] - 0.5
        accident = (srng.uniform(size=n_all) < ACCIDENT_SHARE).astype(np.int8)
        cat["price"] = np.round(cat["price"] * np.where(accident > 0, ACCIDENT_FACTOR, 1.0), -1)
        records = {
            "service_count": pa.array(srng.poisson(np.maximum(age_all, 0.1)).astype(np.int16)),
            "km_since_service": pa.array(np.round(srng.uniform(0, 15_000, n_all), -2)),
            "accident": pa.array(accident),
        }
    table = pa.table(
        {
            "listing_id": pa.array([f"L{seed:02d}{i:07d}" for i in range(order.size)]),
            "make": pa.array(cat["make"].tolist(), pa.string()),
            "model": pa.array(cat["model"].tolist(), pa.string()),
            "year": pa.array(cat["year"], pa.int16()),
            "mileage_km": pa.array(cat["mileage_km"]),
            "price": pa.array(cat["price"]),
            "listed_at": pa.array((cat["listed"] * 1e6).astype(np.int64)).cast(TIME_TYPE),
            # still on offer at the end of the feed: no delisting yet
            "delisted_at": pa.array((gone * 1e6).astype(np.int64), mask=gone > end).cast(TIME_TYPE),
            **records,
            # plainly labelled: no real market's prices
            "simulated": pa.array(np.ones(order.size, bool)),
        }
    )
    return table, glut


def write_portfolio(
    out_dir: str | Path,
    n_vehicles: int = 200,
    days: int = 14,
    *,
    seed: int = 0,
    anomaly_day: int | None = None,
    anomaly_share: float = 0.1,
    default_share: float = 0.02,
    market: str = "uk",
    rtk_every: int = 20,
    progress: bool = False,
) -> PortfolioSummary:
    """Simulates the portfolio into ``out_dir`` (created; existing files of
    the same names are replaced)."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI shows it

    if market not in CATALOGUES:
        raise ValueError(f"market must be one of {sorted(CATALOGUES)}, got {market!r}")
    catalogue = CATALOGUES[market]
    if n_vehicles < 1 or days < 2:
        raise ValueError("need at least one vehicle and two days")
    if not 0 <= anomaly_share <= 1 or not 0 <= default_share <= 1:
        raise ValueError("shares must lie in [0, 1]")
    anomaly_day = max(1, days * 2 // 3) if anomaly_day is None else anomaly_day
    if not 1 <= anomaly_day < days:
        raise ValueError("anomaly_day must fall inside the simulated days")
    out = Path(out_dir)
    tele = out / "telemetry"
    tele.mkdir(parents=True, exist_ok=True)
    day_names = [
        datetime.fromtimestamp(EPOCH + d * 86400 + 8 * 3600, UTC).date().isoformat()
        for d in range(days)
    ]
    for name in day_names:
        for ext in ("jt808", "gb32960"):
            (tele / f"{name}.{ext}").unlink(missing_ok=True)
    shutil.rmtree(out / "rtk", ignore_errors=True)
    rng = np.random.default_rng(seed)
    kinds = list(PORTFOLIO_ANOMALIES)
    n_anom = round(n_vehicles * anomaly_share)
    labels: list[str | None] = [kinds[i % len(kinds)] for i in range(n_anom)] + [None] * (
        n_vehicles - n_anom
    )
    labels = [labels[i] for i in rng.permutation(n_vehicles)]
    # A battery failure needs a battery: move that label to an EV without one
    # (the catalogue pick is each vehicle's first draw, made again below).
    is_ev = [
        catalogue[int(np.random.default_rng([seed, i, 7]).integers(len(catalogue)))][2]
        == "electric"
        for i in range(n_vehicles)
    ]
    spare = [i for i in range(n_vehicles) if is_ev[i] and labels[i] is None]
    for i in range(n_vehicles):
        if labels[i] == "battery" and not is_ev[i]:
            labels[i] = None
            if spare:
                labels[spare.pop(0)] = "battery"
    book: dict[str, list[object]] = {
        k: []
        for k in (
            "vehicle_id",
            "vin",
            "terminal_id",
            "make",
            "model",
            "year",
            "fuel",
            "transmission",
            "engine_size_l",
            "region",
            "currency",
            "loan_amount",
            "outstanding",
            "pledge_date",
        )
    }
    truth: list[tuple[str, str, str, int, str]] = []
    defaults: list[tuple[str, int]] = []
    frames = 0
    size = 0
    bar = tqdm(total=n_vehicles, unit="vehicle", desc="simulate", disable=not progress)
    for i in range(n_vehicles):
        vrng = np.random.default_rng([seed, i, 7])
        make, model, fuel, wmi, gearbox, engine, price = catalogue[
            int(vrng.integers(len(catalogue)))
        ]
        year = int(vrng.integers(2016, 2026))
        vid = f"VH{seed:02d}{i:06d}"
        vin = _vin(vrng, wmi, year)
        terminal = f"138{seed % 100:02d}{i:06d}"  # an 11-digit number, sent as 12 BCD digits
        # lent against a typical value: new price, 15% a year off, 55-95% of it
        loan = round(price * (0.85 ** (2026 - year)) * float(vrng.uniform(0.55, 0.95)), -2)
        pledged = datetime.fromtimestamp(EPOCH - float(vrng.uniform(30, 720)) * 86400, UTC).date()
        for k, v in zip(
            book,
            (
                vid,
                vin,
                terminal,
                make,
                model,
                year,
                fuel,
                gearbox,
                engine,
                REGIONS[i % len(REGIONS)],
                CURRENCY[market],
                loan,
                round(loan * float(vrng.uniform(0.3, 1.0)), -2),
                pledged,
            ),
            strict=True,
        ):
            book[k].append(v)
        label = labels[i]
        cols, start = simulate_vehicle(
            seed, i, None if label == "battery" else label, days, anomaly_day
        )
        if label is not None:
            truth.append(
                (
                    vid,
                    label,
                    PORTFOLIO_ANOMALIES[label],
                    int(start * 1e6),
                    PORTFOLIO_EXPECTED_LEVEL[label],
                )
            )
        if vrng.uniform() < default_share:
            defaults.append(
                (vid, int((EPOCH + float(vrng.uniform(anomaly_day, days)) * 86400) * 1e6))
            )
        t = cols["time"] / 1e6
        lat, lon, spd, km = cols["lat"], cols["lon"], cols["speed_kmh"], cols["odometer_km"]
        ign = cols["ignition"]
        hdg = _heading(lat, lon)
        day_of = np.floor((t - EPOCH) / 86400).astype(int)
        rtk = rtk_every > 0 and i % rtk_every == 0  # these vehicles also carry an RTK receiver
        if fuel == "electric":
            # a normal pack for its age (2.3% a year from mid model year), then
            # the injected failure; the span's own fade is negligible
            age = (t - EPOCH) / (365.25 * 86400) + 2026.75 - 0.5 - year
            soh = np.clip(1.0 - 0.023 * age + float(vrng.normal(0, 0.01)), 0.6, 1.0)
            if label == "battery":
                soh = np.where(t >= start, soh - 0.15, soh)
            batt = _battery(t, spd, km, soh)
        for d in np.unique(day_of):
            sel = day_of == d
            wire = jt808_locations(
                terminal.zfill(12),
                t[sel],
                lat[sel],
                lon[sel],
                np.full(sel.sum(), 10.0),
                spd[sel],
                hdg[sel],
                km[sel],
                serial_start=int(np.flatnonzero(sel)[0]) % 65536,
                # bit 0 ACC (the ignition), bit 1 positioned
                status=(ign[sel] > 0).astype(np.uint64) | np.uint64(2),
            )
            with open(tele / f"{day_names[d]}.jt808", "ab") as f:
                f.write(wire)
            size += len(wire)
            frames += int(sel.sum())
            if rtk:
                text = _rtk_day(vrng, t[sel], lat[sel], lon[sel], spd[sel], hdg[sel]).encode(
                    "ascii"
                )
                rdir = out / "rtk" / vid
                rdir.mkdir(parents=True, exist_ok=True)
                (rdir / f"{day_names[d]}.nmea").write_bytes(text)
                size += len(text)
                frames += int(sel.sum())
            if fuel == "electric":
                ev = sel & ((spd > 0) | batt["charging"])
                if ev.any():
                    n = int(ev.sum())
                    wire = _ev_frames(vin, t, spd, km, lat, lon, batt, ev)
                    with open(tele / f"{day_names[d]}.gb32960", "ab") as f:
                        f.write(wire)
                    size += len(wire)
                    frames += n
        bar.update(1)
    bar.close()
    loan_book = pa.table(book)
    loan_book = loan_book.set_column(
        loan_book.schema.get_field_index("year"), "year", loan_book.column("year").cast(pa.int16())
    )
    pq.write_table(loan_book, out / "loan_book.parquet")
    tv, ta, tk, ts, tl = zip(*truth, strict=True) if truth else ((), (), (), (), ())
    pq.write_table(
        pa.table(
            {
                "vehicle_id": pa.array(tv, pa.string()),
                "anomaly": pa.array(ta, pa.string()),
                "kind": pa.array(tk, pa.string()),
                "start": pa.array(ts, pa.int64()).cast(TIME_TYPE),
                "expected_level": pa.array(tl, pa.string()),
            }
        ),
        out / "truth.parquet",
    )
    listings, _ = _listings(seed, catalogue, days, service=market == "cn")
    (out / "market").mkdir(exist_ok=True)
    pq.write_table(listings, out / "market" / "listings.parquet")
    dv, dt_ = zip(*defaults, strict=True) if defaults else ((), ())
    pq.write_table(
        pa.table(
            {
                "vehicle_id": pa.array(dv, pa.string()),
                "default_at": pa.array(dt_, pa.int64()).cast(TIME_TYPE),
            }
        ),
        out / "defaults.parquet",
    )
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    counts: dict[str, int] = {}
    for _, a, *_ in truth:
        counts[a] = counts.get(a, 0) + 1
    return PortfolioSummary(n_vehicles, days, frames, size, counts, files)
