"""The dashboard's reads of the store: everything the page shows from the
DuckDB database, in one read-only pass (``load``). The overview is
aggregated in the store, so a page stays loadable at any fleet size. The
ledger's rows come from the ledger itself (``report.queries.ledger_rows``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..telemetry.store import Store, bounded_memory_limit
from . import mapped_sql

__all__ = ["DASHBOARD_MEMORY_LIMIT", "DashboardData", "load"]


@dataclass
class DashboardData:
    """What :func:`load` read: the alert counts and list (no paths), the chosen
    vehicles (``ids``) and their alerts, features, valuations and tracks,
    and the fleet aggregates."""

    counts: dict[str, Any]
    alerts: pa.Table
    per_day: list[dict[str, Any]]
    ids: list[str]
    vehicle_alerts: list[dict[str, Any]]
    feats: pa.Table
    fleet_km: list[dict[str, Any]]
    book: pa.Table | None
    valuations: pa.Table | None
    totals: list[dict[str, Any]]
    ltv_t: pa.Table | None
    track: pa.Table | None

    def _per_vehicle(self, column: str) -> dict[str, str]:
        """A loan-book column by vehicle; {} without the book or the column."""
        book = self.book
        if book is None or column not in book.column_names:
            return {}
        return dict(
            zip(book.column("vehicle_id").to_pylist(), book.column(column).to_pylist(), strict=True)
        )

    @property
    def vins(self) -> dict[str, str]:
        """VIN per vehicle, from the loan book."""
        return self._per_vehicle("vin")

    @property
    def book_currency(self) -> dict[str, str]:
        """The loan's currency per vehicle, where the book has one."""
        return self._per_vehicle("currency")


# The page's reads scan the history once (the tracks of its vehicles: every
# stored position is looked at) and keep small results. DuckDB's own
# default keeps every block it read cached, up to 80% of RAM: at 30,000
# vehicles that cache was the dashboard's whole peak (2.3 GB; 0.8 GB with
# this bound, in the same time).
DASHBOARD_MEMORY_LIMIT = "512MB"


def load(db: str | Path, *, max_vehicles: int, max_alert_rows: int) -> DashboardData:
    """Reads what the page shows from the store (read-only); ValueError
    without an alerts table. Vehicle pages go to the ``max_vehicles``
    vehicles with the most severe, then most recent, alerts; the list to the
    ``max_alert_rows`` most severe alerts."""
    limit = bounded_memory_limit(DASHBOARD_MEMORY_LIMIT)
    with Store(db, read_only=True, memory_limit=limit) as store:
        have = set(store.tables())
        if "alerts" not in have:
            raise ValueError(
                f"{db} has no alerts table; run `autolien monitor` or `autolien run` first"
            )
        counts = store.query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE level = 'emergency') AS emergency, "
            "count(*) FILTER (WHERE level = 'alert') AS alert, "
            "count(*) FILTER (WHERE level = 'warning') AS warning, "
            "count(DISTINCT vehicle_id) AS vehicles, max(last_signal) AS last_signal FROM alerts"
        ).to_pylist()[0]
        # the list's columns: not the paths (a list of timestamped points
        # each, made into Python objects for nothing: most of the list's time)
        alerts = store.query(
            "SELECT * EXCLUDE (path) FROM alerts ORDER BY level_code DESC, opened "
            f"LIMIT {int(max_alert_rows)}"
        )
        per_day = store.query(
            "SELECT strftime(opened, '%Y-%m-%d') AS d, level, count(*) AS n FROM alerts "
            "GROUP BY ALL ORDER BY d"
        ).to_pylist()
        ids = sorted(
            store.query(
                "SELECT vehicle_id FROM alerts GROUP BY vehicle_id "
                f"ORDER BY max(level_code) DESC, max(opened) DESC, vehicle_id LIMIT {int(max_vehicles)}"
            )
            .column(0)
            .to_pylist()
        )
        store.con.register("_dash_ids", pa.table({"v": pa.array(ids, pa.string())}))
        vehicle_alerts = store.query(
            "SELECT * FROM alerts WHERE vehicle_id IN (SELECT v FROM _dash_ids) "
            "ORDER BY level_code DESC, opened"
        ).to_pylist()
        feats = (
            store.query(
                "SELECT * FROM monitor_features WHERE vehicle_id IN (SELECT v FROM _dash_ids) "
                "ORDER BY vehicle_id, hour"
            )
            if "monitor_features" in have
            else pa.table({})
        )
        fleet_km = (
            # grouped by the date, formatted after: strftime on every feature
            # hour was two thirds of this query (3.6 M rows at 10,000 vehicles)
            store.query(
                "SELECT strftime(day, '%Y-%m-%d') AS d, km FROM (SELECT CAST(hour AS DATE) AS day, "
                "sum(coalesce(km_track, 0)) AS km FROM monitor_features GROUP BY day) ORDER BY d"
            ).to_pylist()
            if "monitor_features" in have
            else []
        )
        book = store.query("SELECT * FROM loan_book") if "loan_book" in have else None
        valuations = (
            store.query(
                "SELECT * FROM valuations WHERE vehicle_id IN (SELECT v FROM _dash_ids) ORDER BY time"
            )
            if "valuations" in have
            else None
        )
        totals = (
            store.query(
                "SELECT time, sum(value) AS value, any_value(currency) AS currency FROM valuations "
                "GROUP BY time ORDER BY time"
            ).to_pylist()
            if "valuations" in have
            else []
        )
        ltv_t = store.query("SELECT ltv FROM ltv") if "ltv" in have else None
        if "locations" in have and book is not None:
            located = mapped_sql(
                "SELECT terminal_id AS vehicle_id, time, lat, lon, mileage_km FROM locations",
                ("time", "lat", "lon", "mileage_km"),
                only="SELECT v FROM _dash_ids",
            )
            # ORDER BY ALL: a terminal can report two positions in one second;
            # a total order keeps the thinned track the same from run to run
            track = store.query(f"SELECT * FROM ({located}) ORDER BY ALL")
        elif "gnss_track" in have:
            track = store.query(
                "SELECT vehicle_id, time, lat, lon, NULL::DOUBLE AS mileage_km FROM gnss_track "
                "WHERE used AND vehicle_id IN (SELECT v FROM _dash_ids) ORDER BY vehicle_id, time"
            )
        else:
            track = None
    return DashboardData(
        counts=counts,
        alerts=alerts,
        per_day=per_day,
        ids=ids,
        vehicle_alerts=vehicle_alerts,
        feats=feats,
        fleet_km=fleet_km,
        book=book,
        valuations=valuations,
        totals=totals,
        ltv_t=ltv_t,
        track=track,
    )
