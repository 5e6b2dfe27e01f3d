"""Writes libFuzzer seed corpora from the test vectors (tests/data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def main(out: str) -> None:
    base = Path(out)
    seeds: dict[str, list[bytes]] = {"jt808": [], "gb32960": [], "nmea": [], "obd": []}
    for name, key in (("jt808.jsonl", "jt808"), ("gb32960.jsonl", "gb32960")):
        for line in (DATA / "protocols" / name).read_text().splitlines():
            v = json.loads(line)
            if v["level"] == "frame":
                seeds[key].append(bytes.fromhex(v["hex"]))
    # traccar's real-device frames are stored unescaped: escape them for the wire.
    for line in (DATA / "protocols" / "jt808_traccar.jsonl").read_text().splitlines():
        content = bytes.fromhex(json.loads(line)["hex"])[1:-1]
        seeds["jt808"].append(
            b"\x7e" + content.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"
        )
    for line in (DATA / "protocols" / "obd2.jsonl").read_text().splitlines():
        v = json.loads(line)
        if v.get("elm_line"):
            seeds["obd"].append(v["elm_line"].encode() + b"\r")
    seeds["obd"] += [
        b"7E8 03 41 0D 32\r",
        b"18 DA F1 10 04 41 0C 1A F8\r",
        b"41 0C 1A F8 0D 32\r",
        b"NO DATA\r",
    ]
    for log in sorted((DATA / "gnss" / "gpsd").glob("*.log")):
        data = log.read_bytes()
        seeds["nmea"] += [data[i : i + 2048] for i in range(0, len(data), 2048)][:20]
    for key, items in seeds.items():
        d = base / key
        d.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(items):
            (d / f"seed{i:04d}").write_bytes(item)
        print(f"{key}: {len(items)} seeds")


if __name__ == "__main__":
    main(sys.argv[1])
