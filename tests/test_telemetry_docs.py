"""docs/telemetry.md embeds the schemas exactly as the code defines them, and
the binding boundary has one column list per result (issue 16, point 7).

Each C++ result declares its columns once (an X-macro list in its header);
the binding's dicts, ``_core.column_types()`` and the generated schema fields
come from it. These tests hold the typed view (``telemetry/_raw.py``, which
``_core.pyi`` uses) and the reject reasons equal to the compiled module.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest

from autolien import _core
from autolien.gnss import _raw as gnss_raw
from autolien.telemetry import _raw, gb32960, jt808, nmea, obd
from autolien.telemetry.schemas import markdown
from stub_types import _check, _dtype

DOC = Path(__file__).parent.parent / "docs" / "telemetry.md"
ROOT = Path(__file__).parent.parent


def test_doc_schemas_match_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.split("## Schemas", 1)[1].strip().endswith(markdown().strip())


TYPED = {
    "jt808.messages": _raw.Jt808Messages,
    "jt808.locations": _raw.Jt808Locations,
    "gb32960.frames": _raw.Gb32960Frames,
    "gb32960.rows": _raw.Gb32960Rows,
    "obd.rows": _raw.ObdRows,
    "nmea.fixes": _raw.NmeaFixes,
    "nmea.messages": _raw.NmeaMessages,
    "gnss.track": gnss_raw.FuseRaw,
    "gnss.parked": gnss_raw.FuseParked,
    "gnss.moves": gnss_raw.FuseMoves,
    "gnss.fence_events": gnss_raw.FenceEventsRaw,
}


@pytest.mark.parametrize("table", sorted(TYPED))
def test_typed_results_match_the_column_lists(table: str) -> None:
    hints = typing.get_type_hints(TYPED[table])
    columns = _core.column_types()[table]
    names = [name for name, _, _ in columns]
    assert len(set(names)) == len(names)
    for name, dtype, output in columns:
        assert _dtype(hints[name]) == dtype, name
        assert re.fullmatch(r"(|u?int(8|16|32|64)\??|float64\??)", output), (name, output)
    # Array keys the list does not declare are the binary and list columns.
    extra = {k for k, h in hints.items() if _dtype(h) is not None} - set(names)
    assert extra == set(), extra


def test_decoders_return_what_core_pyi_says() -> None:
    data = ROOT / "tests" / "data" / "protocols"
    jt = bytes.fromhex(
        __import__("json").loads((data / "jt808.jsonl").read_text().splitlines()[0])["hex"]
    )
    _check(_core.decode_jt808(jt + b"junk", 1024), _raw.Jt808Raw, "jt808")
    gb = b"".join(
        bytes.fromhex(__import__("json").loads(x)["hex"])
        for x in (data / "gb32960.jsonl").read_text().splitlines()
        if '"level": "frame"' in x
    )
    _check(_core.decode_gb32960(gb + b"junk"), _raw.Gb32960Raw, "gb32960")
    _check(_core.decode_obd(b"7E8 03 41 0D 32\rNO DATA\r"), _raw.ObdRaw, "obd")
    nmea_log = (data.parent / "gnss" / "gpsd" / "nmea-fuzzy-cases.log").read_bytes()
    _check(_core.decode_nmea(nmea_log + b"junk"), _raw.NmeaRaw, "nmea")


def test_schemas_take_their_generated_fields_from_the_column_lists() -> None:
    for table, schema in [
        ("jt808.locations", jt808.LOCATION_SCHEMA),
        ("jt808.messages", jt808.MESSAGE_SCHEMA),
        ("gb32960.rows", gb32960.EV_SCHEMA),
        ("gb32960.scalars", gb32960.EV_SCHEMA),
        ("gb32960.frames", gb32960.MESSAGE_SCHEMA),
        ("obd.rows", obd.OBD_SCHEMA),
        ("nmea.fixes", nmea.FIX_SCHEMA),
        ("nmea.messages", nmea.MESSAGE_SCHEMA),
    ]:
        for name, _, output in _core.column_types()[table]:
            if output:
                field = schema.field(name)
                assert str(field.type) == output.rstrip("?").replace("float64", "double"), name
                assert field.nullable == output.endswith("?"), name


@pytest.mark.parametrize(
    ("module", "header"),
    [
        (jt808, "telemetry/jt808.hpp"),
        (gb32960, "telemetry/gb32960.hpp"),
        (obd, "telemetry/obd.hpp"),
        (nmea, "gnss/nmea.hpp"),
    ],
)
def test_reject_reasons_match_the_cpp_enums(module: Any, header: str) -> None:
    text = (ROOT / "cpp" / "include" / "autolien" / header).read_text()
    body = text.split("enum class Reason", 1)[1].split("};", 1)[0]
    cpp = {int(v): k for k, v in re.findall(r"(\w+) = (\d+)", body)}
    assert {k: v for k, v in module.REASONS.items() if k in cpp} == cpp
