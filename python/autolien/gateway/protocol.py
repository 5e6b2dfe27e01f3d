"""Wire framing and platform responses for JT/T 808 and GB/T 32960.

The framers are incremental: ``feed(bytes)`` returns the complete frames and
framing errors found so far and keeps the unfinished tail. A frame is
returned as it was sent (escaped, with its delimiters), so the spool holds
exactly what the file decoders read.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

__all__ = [
    "Frame",
    "FramingError",
    "Gb32960Framer",
    "Jt808Framer",
    "Jt808Header",
    "bcd_time_gmt8",
    "gb32960_frame",
    "jt808_escape",
    "jt808_frame",
    "parse_jt808_header",
    "xor",
]


def xor(data: bytes) -> int:
    """XOR of every byte: the JT/T 808 check code and the GB/T 32960 BCC."""
    # Fold the bytes as one big integer: far faster than a byte loop in Python.
    v = int.from_bytes(data, "big")
    nb = len(data)
    while nb > 1:
        h = nb // 2
        v = (v >> (8 * h)) ^ (v & ((1 << (8 * h)) - 1))
        nb -= h
    return v & 0xFF


@dataclass(frozen=True, slots=True)
class FramingError:
    """A piece of the stream that is not a frame: why, and its raw bytes."""

    reason: str  # junk, oversize, bad_escape, bad_checksum, too_short
    raw: bytes


# Frame and Jt808Header are built once per frame on the acknowledgement path:
# not frozen, because a frozen dataclass's __init__ sets each field through
# object.__setattr__, which doubles their cost. Nothing mutates them.
@dataclass(slots=True)
class Frame:
    raw: bytes  # as sent: escaped, with its delimiters
    payload: bytes  # JT/T 808: unescaped header+body (no check code); GB/T 32960: the whole frame


class Jt808Framer:
    """0x7E-delimited frames with 0x7D escaping and an XOR check code."""

    def __init__(self, max_frame: int = 8192) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skipping = False  # inside an oversize frame: drop until its end flag

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        n = len(data)
        if (
            not self._buf
            and not self._skipping
            and 2 < n <= self.max_frame
            and data[0] == 0x7E
            and data.find(b"\x7e", 1) == n - 1
        ):
            # the common read: exactly one whole frame and nothing held back
            return [_jt808_unframe(bytes(data))]
        self._buf += data
        out: list[Frame | FramingError] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            if self._skipping:
                end = buf.find(b"\x7e", pos)
                if end < 0:
                    pos = n
                    break
                self._skipping = False
                pos = end + 1  # the oversize frame's end flag
                continue
            start = buf.find(b"\x7e", pos)
            if start < 0:
                out.append(FramingError("junk", bytes(buf[pos:n])))
                pos = n
                break
            if start > pos:
                out.append(FramingError("junk", bytes(buf[pos:start])))
            end = buf.find(b"\x7e", start + 1)
            if end < 0:
                if n - start > self.max_frame:
                    out.append(FramingError("oversize", bytes(buf[start : start + 64])))
                    self._skipping = True
                    pos = n
                else:
                    pos = start
                break
            if end == start + 1:  # 7E 7E: an end flag then a start flag, or an empty frame
                pos = start + 1
                continue
            raw = bytes(buf[start : end + 1])
            pos = end + 1
            if len(raw) > self.max_frame:
                out.append(FramingError("oversize", raw[:64]))
                continue
            out.append(_jt808_unframe(raw))
        del buf[:pos]
        return out


def _jt808_unframe(raw: bytes) -> Frame | FramingError:
    inner = raw[1:-1]
    if b"\x7d" in inner:
        parts = inner.split(b"\x7d")
        un = bytearray(parts[0])
        for p in parts[1:]:
            if not p or p[0] not in (1, 2):
                return FramingError("bad_escape", raw)
            un.append(0x7D if p[0] == 1 else 0x7E)
            un += p[1:]
        inner = bytes(un)
    if len(inner) < 13:  # 12-byte 2013 header and the check code
        return FramingError("too_short", raw)
    if xor(inner[:-1]) != inner[-1]:
        return FramingError("bad_checksum", raw)
    return Frame(raw, inner[:-1])


def jt808_escape(payload: bytes) -> bytes:
    """Escapes header+body+check code and adds the 0x7E flags."""
    return b"\x7e" + payload.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


@dataclass(slots=True)
class Jt808Header:
    msg_id: int
    props: int
    v2019: bool
    version: int  # protocol version byte (2019 only)
    phone: bytes  # BCD as sent: 6 bytes (2013) or 10 (2019)
    serial: int
    body: bytes
    subpackage: bool

    @property
    def terminal_id(self) -> str:
        return self.phone.hex()


def parse_jt808_header(payload: bytes) -> Jt808Header | None:
    """The header of an unescaped frame; None when the length fits neither
    the 2013 header nor the 2019 one."""
    msg_id, props = struct.unpack_from(">HH", payload)
    body_len = props & 0x3FF
    sub = bool(props & 0x2000)
    extra = 4 if sub else 0
    # the declared body length decides the version, as in the file decoder
    for v2019 in (bool(props & 0x4000), not props & 0x4000):
        hlen = (17 if v2019 else 12) + extra
        if len(payload) == hlen + body_len:
            if v2019:
                version, phone = payload[4], payload[5:15]
                serial = struct.unpack_from(">H", payload, 15)[0]
            else:
                version, phone = 0, payload[4:10]
                serial = struct.unpack_from(">H", payload, 10)[0]
            return Jt808Header(
                msg_id, props, v2019, version, bytes(phone), serial, payload[hlen:], sub
            )
    return None


def jt808_frame(req: Jt808Header, msg_id: int, serial: int, body: bytes) -> bytes:
    """A platform message to the terminal that sent ``req``, in its header version."""
    props = len(body)
    if req.v2019:
        props |= 0x4000
        head = struct.pack(">HHB", msg_id, props, req.version) + req.phone
    else:
        head = struct.pack(">HH", msg_id, props) + req.phone
    payload = head + struct.pack(">H", serial & 0xFFFF) + body
    return jt808_escape(payload + bytes([xor(payload)]))


class Gb32960Framer:
    """'##'-started frames: 24-byte header, data length, data, BCC."""

    HEADER = 24

    def __init__(self, max_frame: int = 65536) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        self._buf += data
        out: list[Frame | FramingError] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            start = buf.find(b"##", pos)
            if start < 0:
                keep = n - 1 if buf[n - 1 : n] == b"#" else n  # a '#' that may start a frame
                if keep > pos:
                    out.append(FramingError("junk", bytes(buf[pos:keep])))
                pos = keep
                break
            if start > pos:
                out.append(FramingError("junk", bytes(buf[pos:start])))
                pos = start
            if n - start < self.HEADER:
                break
            size = self.HEADER + struct.unpack_from(">H", buf, start + 22)[0] + 1
            if size > self.max_frame:
                # the length is not to be trusted: resynchronise on the next '##'
                out.append(FramingError("oversize", bytes(buf[start : start + self.HEADER])))
                pos = start + 2
                continue
            if n - start < size:
                break
            raw = bytes(buf[start : start + size])
            if xor(raw[2:-1]) != raw[-1]:
                out.append(FramingError("bad_checksum", raw))
                pos = start + 2  # the next '##' may be a real frame
                continue
            out.append(Frame(raw, raw))
            pos = start + size
        del buf[:pos]
        return out


def bcd_time_gmt8(t: float | None = None) -> bytes:
    """GB/T 32960 time: six binary bytes YY MM DD hh mm ss in GMT+8."""
    tm = time.gmtime((time.time() if t is None else t) + 8 * 3600)
    return bytes([tm.tm_year % 100, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec])


def gb32960_frame(cmd: int, response: int, vin: bytes, data: bytes, encryption: int = 1) -> bytes:
    """A GB/T 32960 frame with its BCC."""
    body = (
        struct.pack(">BB", cmd, response) + vin + struct.pack(">BH", encryption, len(data)) + data
    )
    return b"##" + body + bytes([xor(body)])
