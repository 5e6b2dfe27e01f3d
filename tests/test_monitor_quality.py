"""detection_quality on hand-built alerts and truth, every figure counted by hand."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from autolien.monitor.config import LEVELS
from autolien.monitor.quality import detection_quality

S = 1_790_784_000.0  # the anomaly start on every injected vehicle
H = 3600.0
TS = pa.timestamp("us", tz="UTC")


def _truth(rows: list[tuple[str, str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "vehicle_id": [r[0] for r in rows],
            "anomaly": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "start": pa.array([int(S * 1e6)] * len(rows), pa.int64()).cast(TS),
            "expected_level": [r[3] for r in rows],
        }
    )


def _alerts(rows: list[tuple[str, str, str, float]]) -> pa.Table:
    return pa.table(
        {
            "vehicle_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "level": [r[2] for r in rows],
            "level_code": pa.array([LEVELS.index(r[2]) for r in rows], pa.int8()),
            "opened": pa.array([int(r[3] * 1e6) for r in rows], pa.int64()).cast(TS),
        }
    )


TRUTH = _truth(
    [
        ("v1", "mileage_jump", "mileage_jump", "alert"),
        ("v5", "mileage_jump", "mileage_jump", "alert"),
        ("v2", "relocation", "relocation", "alert"),
        ("v3", "rollback", "odometer_rollback", "emergency"),
    ]
)
ALERTS = _alerts(
    [
        ("v1", "mileage_jump", "warning", S + 2 * H),  # found, level not reached
        ("v1", "mileage_jump", "alert", S + 200 * H),  # beyond the 168 h horizon
        ("v5", "mileage_jump", "alert", S + 10 * H),  # found at its level
        ("v2", "relocation", "alert", S - 2 * H),  # before start - 1 h: no hit, a false alert
        ("v2", "mileage_jump", "warning", S + 5 * H),  # related to the relocation
        ("v3", "odometer_rollback", "emergency", S + 0.5 * H),
        ("v3", "entropy_increase", "warning", S + 1 * H),  # neither meant nor related: false
        ("v4", "device_silence", "emergency", S + 3 * H),  # a normal vehicle's emergency
        ("v4", "entropy_increase", "warning", S - 6 * H),  # before eval_start: not judged
    ]
)


def test_recall_level_and_delay_per_anomaly() -> None:
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H)
    mj = q["anomalies"]["mileage_jump"]
    assert (mj["n"], mj["detected"], mj["recall"]) == (2, 2, 1.0)
    # v1 reached only a warning, v5 the expected alert
    assert mj["level_reached"] == 0.5
    assert mj["delays_h"] == [2.0, 10.0]
    assert (mj["median_delay_h"], mj["max_delay_h"]) == (6.0, 10.0)
    rel = q["anomalies"]["relocation"]
    assert (rel["n"], rel["recall"], rel["level_reached"], rel["median_delay_h"]) == (
        1,
        0.0,
        0.0,
        None,
    )
    rb = q["anomalies"]["rollback"]
    assert (rb["recall"], rb["level_reached"], rb["delays_h"]) == (1.0, 1.0, [0.5])


def test_precision_per_alert_counts_only_the_kinds_meant() -> None:
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H)
    k = q["alert_kinds"]
    # v1 twice and v5 true; v2's is related to its relocation
    assert {x: k["mileage_jump"][x] for x in ("alerts", "true", "related", "false")} == {
        "alerts": 4,
        "true": 3,
        "related": 1,
        "false": 0,
    }
    assert k["mileage_jump"]["precision"] == 1.0
    assert k["mileage_jump"]["precision_strict"] == 0.75
    assert (k["relocation"]["true"], k["relocation"]["false"], k["relocation"]["precision"]) == (
        0,
        1,
        0.0,
    )
    assert k["odometer_rollback"]["precision"] == 1.0
    # the rollback vehicle's entropy alert is not credited to the rollback
    assert (k["entropy_increase"]["alerts"], k["entropy_increase"]["false"]) == (1, 1)
    assert k["device_silence"]["precision"] == 0.0
    assert q["normal_emergencies"] == 1


def test_an_alert_kind_that_only_relates_has_no_precision() -> None:
    q = detection_quality(
        _alerts([("v2", "position_jump", "warning", S + H)]),
        _truth([("v2", "relocation", "relocation", "alert")]),
        eval_start=S,
    )
    pj = q["alert_kinds"]["position_jump"]
    assert (pj["related"], pj["precision"], pj["precision_strict"]) == (1, None, 0.0)


def test_tow_is_not_credited_with_entropy_or_odometer_alerts() -> None:
    q = detection_quality(
        _alerts(
            [
                ("v6", "entropy_increase", "warning", S + H),
                ("v6", "odometer_mismatch", "warning", S + H),
            ]
        ),
        _truth([("v6", "tow", "towing", "alert")]),
        eval_start=S,
    )
    assert q["anomalies"]["tow"]["recall"] == 0.0
    for kind in ("entropy_increase", "odometer_mismatch"):
        assert q["alert_kinds"][kind]["false"] == 1, kind


def test_short_history_makes_baseline_recall_not_measurable() -> None:
    # v2 was first seen 100 h before its relocation: the baseline needs 24 + 168 h
    q = detection_quality(
        ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v2": S - 100 * H, "v3": S - 10 * H}
    )
    rel = q["anomalies"]["relocation"]
    assert (rel["n"], rel["recall"], rel["level_reached"]) == (0, None, None)
    assert rel["measurable"] is False
    assert rel["note"].startswith("not measurable: history 100 h")
    assert rel["not_measurable"] == [
        {
            "vehicle_id": "v2",
            "reason": "history 100 h before the start < 192 h (lag_h + min_baseline_h) "
            "that relocation needs",
        }
    ]
    # a rollback needs no baseline: still measured on 10 h of history
    assert q["anomalies"]["rollback"]["n"] == 1
    assert q["anomalies"]["rollback"]["recall"] == 1.0
    # 192 h exactly is enough
    q2 = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v2": S - 192 * H})
    assert q2["anomalies"]["relocation"]["n"] == 1


@pytest.mark.parametrize("opened_h", [-1.0, 168.0])
def test_the_detection_window_edges_are_inclusive(opened_h: float) -> None:
    q = detection_quality(
        _alerts([("v1", "mileage_jump", "alert", S + opened_h * H)]),
        _truth([("v1", "mileage_jump", "mileage_jump", "alert")]),
        eval_start=S - 2 * H,
    )
    assert q["anomalies"]["mileage_jump"]["recall"] == 1.0
    assert q["anomalies"]["mileage_jump"]["delays_h"] == [opened_h]


def test_every_count_adds_up_and_every_edge_holds() -> None:
    # mutation testing (make mutate) found these untested: counts that must
    # add (two of each), the 1 h slack and the horizon to the second, alerts
    # judged from eval_start itself, timestamps given as datetimes, and an
    # emergency on an injected vehicle that is not a normal one's
    truth = _truth(
        [
            ("a", "mileage_jump", "mileage_jump", "alert"),
            ("b", "mileage_jump", "mileage_jump", "alert"),
            ("r", "relocation", "relocation", "alert"),
            ("x", "rollback", "odometer_rollback", "emergency"),
        ]
    )
    alerts = _alerts(
        [
            ("a", "mileage_jump", "alert", S + H),
            ("b", "mileage_jump", "alert", S - H),  # exactly 1 h early: found, true
            ("b", "entropy_increase", "warning", S - 10 * H),  # before eval_start, mid-list
            ("r", "mileage_jump", "warning", S + 2 * H),  # related
            ("r", "mileage_jump", "warning", S + 3 * H),  # related
            ("n1", "mileage_jump", "warning", S - 5 * H),  # at eval_start: judged, false
            ("n2", "mileage_jump", "warning", S),  # false
            ("a", "relocation", "alert", S - H - 1),  # 1 h 1 s early: not found
            ("r", "relocation", "alert", S + 168 * H + 1),  # 1 s past the horizon
            ("x", "odometer_rollback", "emergency", S),
            ("n1", "device_silence", "emergency", S),
            ("n2", "device_silence", "emergency", S),
        ]
    )
    first = {"a": S - 300 * H, "r": S - 300 * H}
    q = detection_quality(
        alerts,
        truth,
        eval_start=dt.datetime.fromtimestamp(S - 5 * H, dt.UTC),
        first_seen={k: dt.datetime.fromtimestamp(v, dt.UTC) for k, v in first.items()},
    )
    mj = q["anomalies"]["mileage_jump"]
    assert (mj["kind"], mj["n"], mj["detected"], mj["level_reached"]) == ("mileage_jump", 2, 2, 1.0)
    assert mj["delays_h"] == [1.0, -1.0]
    assert q["anomalies"]["relocation"]["recall"] == 0.0
    k = q["alert_kinds"]["mileage_jump"]
    assert {x: k[x] for x in ("alerts", "true", "related", "false")} == {
        "alerts": 6,
        "true": 2,
        "related": 2,
        "false": 2,
    }
    assert k["precision"] == 0.5
    assert k["precision_strict"] == pytest.approx(2 / 6)
    # a relocation alert on the mileage vehicle is false; the one on the
    # relocated vehicle past the horizon is still true per alert
    assert (q["alert_kinds"]["relocation"]["true"], q["alert_kinds"]["relocation"]["false"]) == (
        1,
        1,
    )
    assert "entropy_increase" not in q["alert_kinds"]
    assert q["normal_emergencies"] == 2


def test_reasons_name_the_hours_and_an_unknown_anomaly_credits_nothing() -> None:
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v2": S - 180.52 * H})
    (nm,) = q["anomalies"]["relocation"]["not_measurable"]
    assert nm["reason"].startswith("history 181 h before the start")
    q = detection_quality(
        _alerts([("z", "towing", "alert", S)]),
        _truth([("z", "made_up", "towing", "alert")]),
        eval_start=S,
    )
    assert q["anomalies"]["made_up"]["recall"] == 1.0  # found by its truth kind
    assert q["alert_kinds"]["towing"]["false"] == 1  # but no alert kind is meant for it


def test_no_alerts_at_all() -> None:
    empty = _alerts([]).cast(ALERTS.schema)
    q = detection_quality(empty, TRUTH, eval_start=S)
    assert q["anomalies"]["mileage_jump"]["recall"] == 0.0
    assert q["alert_kinds"] == {}
    q = detection_quality(ALERTS, TRUTH.slice(0, 0), eval_start=S - 5 * H)
    assert q["anomalies"] == {}
    assert q["alert_kinds"]["mileage_jump"]["false"] == 4


def test_the_one_hour_slack_to_the_second() -> None:
    # an alert of the meant kind 1 h before the start finds the anomaly and
    # is true; one second earlier it does neither
    truth = _truth([("a", "mileage_jump", "mileage_jump", "alert")])
    for early_s, found in ((3600.0, 1.0), (3601.0, 0.0)):
        q = detection_quality(
            _alerts([("a", "mileage_jump", "alert", S - early_s)]), truth, eval_start=S - 2 * H
        )
        assert q["anomalies"]["mileage_jump"]["recall"] == found
        assert q["alert_kinds"]["mileage_jump"]["true"] == found


def test_a_portfolio_history_too_short_for_the_baselines() -> None:
    # 6.5 days of data in all: the baseline needs 8 (7 days and a 1-day lag)
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, history_h=6.5 * 24)
    for name in ("mileage_jump", "relocation"):
        a = q["anomalies"][name]
        assert (a["recall"], a["measurable"]) == (None, False)
        assert a["note"] == "not measurable: history 6.5 d < 8 d that the baseline needs"
    assert q["anomalies"]["rollback"]["recall"] == 1.0  # no baseline needed
    assert q["alert_kinds"]["mileage_jump"]["anomalies"] == 2  # v1 and v5


@pytest.mark.parametrize(
    ("history_h", "shown"),
    [(191.99, "7.9996"), (191.0, "7.96"), (180.0, "7.5"), (191.9999, "7.999996")],
)
def test_a_history_just_short_never_reads_as_the_limit(history_h: float, shown: str) -> None:
    # 191.99 h is 7.99958 days: one decimal would print "8.0 d < 8 d"
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, history_h=history_h)
    note = q["anomalies"]["mileage_jump"]["note"]
    assert note == f"not measurable: history {shown} d < 8 d that the baseline needs"


def test_a_vehicle_history_just_short_never_reads_as_the_limit() -> None:
    # first seen 191.6 h before the start: ".0f" would print "192 h < 192 h"
    q = detection_quality(
        ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v1": S - 191.6 * H, "v5": S - 300 * H}
    )
    (nm,) = q["anomalies"]["mileage_jump"]["not_measurable"]
    assert nm["reason"].startswith("history 191.6 h before the start < 192 h ")


def test_the_baseline_need_follows_the_config() -> None:
    from autolien.monitor.config import MonitorConfig
    from autolien.monitor.quality import baseline_need_h

    assert baseline_need_h() == 192.0  # 168 h of baseline + 24 h lag
    cfg = MonitorConfig(min_baseline_h=72, lag_h=12)
    assert baseline_need_h(cfg) == 84.0
    # 6.5 days is short for the default 8 but enough for 84 h
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, history_h=156.0, config=cfg)
    assert q["anomalies"]["mileage_jump"]["measurable"] is True
    (nm,) = detection_quality(
        ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v2": S - 80 * H}, config=cfg
    )["anomalies"]["relocation"]["not_measurable"]
    assert nm["reason"].startswith("history 80 h before the start < 84 h ")


@pytest.mark.parametrize(
    ("history_h", "measurable"), [(192.0, True), (240.0, True), (191.0, False)]
)
def test_a_portfolio_history_at_and_past_the_need(history_h: float, measurable: bool) -> None:
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, history_h=history_h)
    a = q["anomalies"]["mileage_jump"]
    assert a["measurable"] is measurable
    assert (a["n"], "note" in a) == ((2, False) if measurable else (0, True))
    assert q["anomalies"]["rollback"]["measurable"] is True


def test_some_measurable_and_some_not_gives_no_note() -> None:
    # v1's mileage jump has too short a history, v5's a whole one
    q = detection_quality(
        ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v1": S - 10 * H, "v5": S - 300 * H}
    )
    a = q["anomalies"]["mileage_jump"]
    assert (a["n"], len(a["not_measurable"]), a["measurable"]) == (1, 1, True)
    assert "note" not in a


def test_the_shown_history_is_cut_at_the_first_decimals_that_read_under() -> None:
    from autolien.monitor.quality import _below

    # 191.951 h: "192" and "192.0" read as the limit, "191.95" does not
    q = detection_quality(ALERTS, TRUTH, eval_start=S - 5 * H, first_seen={"v2": S - 191.951 * H})
    (nm,) = q["anomalies"]["relocation"]["not_measurable"]
    assert nm["reason"].startswith("history 191.95 h before the start < 192 h ")
    # within 1e-14 of the limit no 12 decimals will do: the exact repr
    assert _below(7.99999999999994, 8.0, 1) == "7.99999999999994"
    assert _below(7.5, 8.0, 1) == "7.5"


def test_eval_start_as_a_datetime_to_the_minute() -> None:
    # an alert a minute before eval_start is not judged, a minute after is
    when = dt.datetime.fromtimestamp(S, dt.UTC)
    for off, judged in ((-60.0, False), (60.0, True)):
        q = detection_quality(
            _alerts([("v4", "entropy_increase", "warning", S + off)]), TRUTH, eval_start=when
        )
        assert ("entropy_increase" in q["alert_kinds"]) is judged
