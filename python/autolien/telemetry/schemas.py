"""The telemetry schemas in one place, and their Markdown rendering for the docs.

``python -m autolien.telemetry.schemas`` prints the tables that
docs/telemetry.md embeds; tests/test_telemetry_docs.py checks they agree.
"""

from __future__ import annotations

import pyarrow as pa

from ._common import REJECT_SCHEMA
from .gb32960 import EV_SCHEMA
from .gb32960 import MESSAGE_SCHEMA as GB32960_MESSAGE_SCHEMA
from .jt808 import LOCATION_SCHEMA
from .jt808 import MESSAGE_SCHEMA as JT808_MESSAGE_SCHEMA
from .nmea import FIX_SCHEMA
from .nmea import MESSAGE_SCHEMA as NMEA_MESSAGE_SCHEMA
from .obd import OBD_SCHEMA

__all__ = ["SCHEMAS", "markdown"]

SCHEMAS: dict[str, pa.Schema] = {
    "decode_jt808().table (store: locations)": LOCATION_SCHEMA,
    "decode_jt808().messages": JT808_MESSAGE_SCHEMA,
    "decode_gb32960().table (store: ev)": EV_SCHEMA,
    "decode_gb32960().messages": GB32960_MESSAGE_SCHEMA,
    "decode_nmea().table (store: fixes)": FIX_SCHEMA,
    "decode_nmea().messages": NMEA_MESSAGE_SCHEMA,
    "decode_obd().table (store: obd)": OBD_SCHEMA,
    "every decoder's .rejects (store: rejects, plus decoder)": REJECT_SCHEMA,
}


def markdown() -> str:
    """Markdown tables of every schema (column, Arrow type, nullable)."""
    out = []
    for title, schema in SCHEMAS.items():
        out.append(f"### `{title}`\n")
        out.append("| column | type | nullable |")
        out.append("|---|---|---|")
        out.extend(f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} |" for f in schema)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(markdown())
