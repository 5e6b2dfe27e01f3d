"""docs/telemetry.md embeds the schemas exactly as the code defines them."""

from __future__ import annotations

from pathlib import Path

from autolien.telemetry.schemas import markdown

DOC = Path(__file__).parent.parent / "docs" / "telemetry.md"


def test_doc_schemas_match_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.split("## Schemas", 1)[1].strip().endswith(markdown().strip())
