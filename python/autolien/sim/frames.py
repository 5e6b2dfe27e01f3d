"""Wire-frame encoders for simulated T-Boxes, written from the standards and
vectorised with numpy (one array row per frame, no per-frame Python):

* JT/T 808-2013 location reports (0x0200) with the mileage item (0x01), and
  batch uploads (0x0704) of them;
* GB/T 32960.3 real-time frames (0x02) with the vehicle (0x01), location
  (0x05) and extreme-value (0x06) units;
* NMEA 0183 GGA, RMC and GST sentences.

The tests check the bytes against published vectors and decode everything
back with the project's decoders and pynmea2."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["gb32960_realtime", "jt808_batch", "jt808_locations", "nmea_sentences"]

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
_GMT8 = 8 * 3600


def _be(values: npt.ArrayLike, nbytes: int) -> U8:
    """Big-endian bytes of unsigned integers, one row per value."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(nbytes - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
    return ((v[:, None] >> shifts[None, :]) & np.uint64(0xFF)).astype(np.uint8)


def _civil(t_utc: F64, offset_s: int) -> tuple[np.ndarray, ...]:
    """(year, month, day, hour, minute, second) of UTC seconds shifted by offset."""
    dt = (np.floor(np.asarray(t_utc) + offset_s)).astype("datetime64[s]")
    y = dt.astype("datetime64[Y]").astype(int) + 1970
    mo = dt.astype("datetime64[M]").astype(int) % 12 + 1
    d = (dt - dt.astype("datetime64[M]")).astype("timedelta64[D]").astype(int) + 1
    s_of_day = (dt - dt.astype("datetime64[D]")).astype(int)
    return y, mo, d, s_of_day // 3600, (s_of_day // 60) % 60, s_of_day % 60


def _bcd(v: np.ndarray) -> np.ndarray:
    return np.asarray(((v // 10) << 4) | (v % 10))


def _xor_rows(a: U8) -> U8:
    return np.asarray(np.bitwise_xor.reduce(a, axis=1), dtype=np.uint8)


def _jt808_escape(content: U8) -> bytes:
    """Frames (rows) -> 0x7E-delimited, escaped bytes (0x7E -> 7D 02, 0x7D -> 7D 01)."""
    n, w = content.shape
    esc = (content == 0x7E) | (content == 0x7D)
    pair = np.empty((n, w, 2), dtype=np.uint8)
    pair[..., 0] = np.where(esc, 0x7D, content)
    pair[..., 1] = np.where(content == 0x7E, 0x02, 0x01)
    keep = np.ones((n, w, 2), dtype=bool)
    keep[..., 1] = esc
    flag = np.full((n, 1), 0x7E, dtype=np.uint8)
    body = np.concatenate([flag, pair.reshape(n, 2 * w), flag], axis=1)
    mask = np.concatenate(
        [np.ones((n, 1), bool), keep.reshape(n, 2 * w), np.ones((n, 1), bool)], axis=1
    )
    return bytes(body[mask].tobytes())


def _phone(phone: str) -> U8:
    if len(phone) != 12 or not phone.isdigit():
        raise ValueError(f"a JT/T 808-2013 terminal number has 12 digits, got {phone!r}")
    return np.frombuffer(bytes.fromhex(phone), dtype=np.uint8)


def _location_bodies(
    t_utc: F64,
    lat: F64,
    lon: F64,
    altitude_m: F64,
    speed_kmh: F64,
    heading_deg: F64,
    mileage_km: F64,
    alarm: npt.ArrayLike | None,
    status: npt.ArrayLike | None,
) -> U8:
    """The 28-byte basic block plus item 0x01 (mileage, 0.1 km): 34 bytes per row."""
    n = np.asarray(t_utc).size
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    speed = np.asarray(speed_kmh, float)
    if status is None:
        # bit 0 ACC on while moving, bit 1 positioned
        st = (speed > 0).astype(np.uint64) | np.uint64(2)
    else:
        st = np.broadcast_to(np.asarray(status, np.uint64), (n,)).copy()
    # bits 2/3 south/west: the coordinates are sent unsigned
    st |= (lat < 0).astype(np.uint64) << np.uint64(2)
    st |= (lon < 0).astype(np.uint64) << np.uint64(3)
    al = (
        np.zeros(n, np.uint64)
        if alarm is None
        else np.broadcast_to(np.asarray(alarm, np.uint64), (n,))
    )
    y, mo, d, h, mi, s = _civil(np.asarray(t_utc, float), _GMT8)
    when = np.stack([_bcd(y % 100), _bcd(mo), _bcd(d), _bcd(h), _bcd(mi), _bcd(s)], axis=1).astype(
        np.uint8
    )
    parts = [
        _be(al, 4),
        _be(st, 4),
        _be(np.rint(np.abs(lat) * 1e6), 4),
        _be(np.rint(np.abs(lon) * 1e6), 4),
        _be(np.clip(np.rint(altitude_m), 0, 65535), 2),
        _be(np.clip(np.rint(speed * 10), 0, 65535), 2),
        _be(np.mod(np.rint(heading_deg), 360), 2),
        when,
        np.tile(np.array([0x01, 0x04], np.uint8), (n, 1)),
        _be(np.clip(np.rint(np.asarray(mileage_km, float) * 10), 0, 2**32 - 1), 4),
    ]
    return np.concatenate(parts, axis=1)


def jt808_locations(
    phone: str,
    t_utc: F64,
    lat: F64,
    lon: F64,
    altitude_m: F64,
    speed_kmh: F64,
    heading_deg: F64,
    mileage_km: F64,
    *,
    serial_start: int = 0,
    alarm: npt.ArrayLike | None = None,
    status: npt.ArrayLike | None = None,
) -> bytes:
    """One 0x0200 frame per row, as a terminal sends them (2013 header)."""
    body = _location_bodies(
        t_utc, lat, lon, altitude_m, speed_kmh, heading_deg, mileage_km, alarm, status
    )
    n = body.shape[0]
    header = np.concatenate(
        [
            np.tile(np.array([0x02, 0x00], np.uint8), (n, 1)),
            _be(np.full(n, body.shape[1]), 2),
            np.tile(_phone(phone), (n, 1)),
            _be((serial_start + np.arange(n)) % 65536, 2),
        ],
        axis=1,
    )
    content = np.concatenate([header, body], axis=1)
    return _jt808_escape(np.concatenate([content, _xor_rows(content)[:, None]], axis=1))


def jt808_batch(
    phone: str,
    t_utc: F64,
    lat: F64,
    lon: F64,
    altitude_m: F64,
    speed_kmh: F64,
    heading_deg: F64,
    mileage_km: F64,
    *,
    serial: int = 0,
    reissue: bool = True,
    per_frame: int = 28,
) -> bytes:
    """0x0704 batch uploads of location bodies, ``per_frame`` at a time; type
    1 (blind-area re-upload) when ``reissue``, as after an outage."""
    body = _location_bodies(
        t_utc, lat, lon, altitude_m, speed_kmh, heading_deg, mileage_km, None, None
    )
    most = (1023 - 3) // (body.shape[1] + 2)  # the body length field has 10 bits
    if not 1 <= per_frame <= most:
        raise ValueError(f"per_frame must be in 1..{most}: a 0x0704 body holds at most 1,023 bytes")
    out = bytearray()
    for k, i in enumerate(range(0, body.shape[0], per_frame)):
        items = body[i : i + per_frame]
        m = items.shape[0]
        payload = np.concatenate([_be(np.full(m, items.shape[1]), 2), items], axis=1).reshape(-1)
        b = np.concatenate([_be([m], 2)[0], np.array([1 if reissue else 0], np.uint8), payload])
        head = np.concatenate(
            [
                np.array([0x07, 0x04], np.uint8),
                _be([b.size], 2)[0],
                _phone(phone),
                _be([(serial + k) % 65536], 2)[0],
            ]
        )
        content = np.concatenate([head, b])[None, :]
        out += _jt808_escape(np.concatenate([content, _xor_rows(content)[:, None]], axis=1))
    return bytes(out)


def gb32960_realtime(
    vin: str,
    t_utc: F64,
    *,
    speed_kmh: F64,
    odometer_km: F64,
    pack_voltage_v: F64,
    pack_current_a: F64,
    soc_pct: F64,
    lat: F64,
    lon: F64,
    max_cell_v: F64,
    min_cell_v: F64,
    max_temp_c: F64,
    min_temp_c: F64,
    vehicle_status: npt.ArrayLike = 1,
    charging_status: npt.ArrayLike = 3,
    gear_raw: npt.ArrayLike = 0x0E,
    insulation_kohm: npt.ArrayLike = 5000,
    accel_pedal_pct: npt.ArrayLike = 0,
    brake_pedal: npt.ArrayLike = 0,
    reissue: bool = False,
) -> bytes:
    """GB/T 32960.3 real-time (0x02) or reissued (0x03) frames: vehicle,
    location and extreme-value units, BCC-checked, one frame per row."""
    raw_vin = vin.encode("ascii")
    if len(raw_vin) != 17:
        raise ValueError(f"a VIN has 17 characters, got {vin!r}")
    t = np.asarray(t_utc, float)
    n = t.size

    def u8(v: npt.ArrayLike) -> U8:
        return np.broadcast_to(np.asarray(v, np.uint64), (n,)).astype(np.uint8)[:, None]

    y, mo, d, h, mi, s = _civil(t, _GMT8)
    when = np.stack([y % 100, mo, d, h, mi, s], axis=1).astype(np.uint8)
    vehicle = np.concatenate(
        [
            np.full((n, 1), 0x01, np.uint8),
            u8(vehicle_status),
            u8(charging_status),
            u8(1),  # mode: electric
            _be(np.clip(np.rint(np.asarray(speed_kmh, float) * 10), 0, 2200), 2),
            _be(np.clip(np.rint(np.asarray(odometer_km, float) * 10), 0, 9_999_999), 4),
            _be(np.clip(np.rint(np.asarray(pack_voltage_v, float) * 10), 0, 10000), 2),
            _be(np.clip(np.rint((np.asarray(pack_current_a, float) + 1000) * 10), 0, 20000), 2),
            u8(np.clip(np.rint(soc_pct), 0, 100)),
            u8(1),
            u8(gear_raw),  # DC-DC working; 0x0E: drive, traction
            _be(np.broadcast_to(np.asarray(insulation_kohm, np.uint64), (n,)), 2),
            u8(accel_pedal_pct),
            u8(brake_pedal),
        ],
        axis=1,
    )
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    loc_status = (lat < 0).astype(np.uint8) << 1 | (lon < 0).astype(np.uint8) << 2
    location = np.concatenate(
        [
            np.full((n, 1), 0x05, np.uint8),
            loc_status[:, None],
            _be(np.rint(np.abs(lon) * 1e6), 4),
            _be(np.rint(np.abs(lat) * 1e6), 4),
        ],
        axis=1,
    )
    extremes = np.concatenate(
        [
            np.full((n, 1), 0x06, np.uint8),
            u8(1),
            u8(1),
            _be(np.rint(np.asarray(max_cell_v, float) * 1000), 2),
            u8(1),
            u8(2),
            _be(np.rint(np.asarray(min_cell_v, float) * 1000), 2),
            u8(1),
            u8(1),
            u8(np.clip(np.rint(np.asarray(max_temp_c, float)) + 40, 0, 250)),
            u8(1),
            u8(2),
            u8(np.clip(np.rint(np.asarray(min_temp_c, float)) + 40, 0, 250)),
        ],
        axis=1,
    )
    data = np.concatenate([when, vehicle, location, extremes], axis=1)
    head = np.concatenate(
        [
            np.tile(np.array([0x03 if reissue else 0x02, 0xFE], np.uint8), (n, 1)),
            np.tile(np.frombuffer(raw_vin, np.uint8), (n, 1)),
            np.full((n, 1), 0x01, np.uint8),  # not encrypted
            _be(np.full(n, data.shape[1]), 2),
        ],
        axis=1,
    )
    content = np.concatenate([head, data], axis=1)
    framed = np.concatenate(
        [np.full((n, 2), 0x23, np.uint8), content, _xor_rows(content)[:, None]], axis=1
    )
    return framed.tobytes()


def _nmea(body: str) -> str:
    x = 0
    for ch in body.encode("ascii"):
        x ^= ch
    return f"${body}*{x:02X}\r\n"


def _dm(value: float, deg_digits: int) -> str:
    a = abs(value)
    d = int(a)
    m = (a - d) * 60
    if round(m, 6) >= 60:  # rounding carried into the degrees
        d, m = d + 1, 0.0
    return f"{d:0{deg_digits}d}{m:09.6f}"


def nmea_sentences(
    t_utc: F64,
    lat: F64,
    lon: F64,
    altitude_m: F64,
    quality: npt.ArrayLike,
    sats: npt.ArrayLike,
    hdop: npt.ArrayLike,
    speed_kmh: F64,
    course_deg: F64,
    sigma_m: F64,
    *,
    talker: str = "GN",
    geoid_sep_m: float = 10.0,
) -> str:
    """GGA, RMC and GST per epoch, as an RTK receiver logs them."""
    y, mo, d, h, mi, s = _civil(np.asarray(t_utc, float), 0)
    frac = np.asarray(t_utc, float) - np.floor(np.asarray(t_utc, float))
    q = np.broadcast_to(np.asarray(quality, int), np.shape(t_utc))
    sv = np.broadcast_to(np.asarray(sats, int), np.shape(t_utc))
    hd = np.broadcast_to(np.asarray(hdop, float), np.shape(t_utc))
    out = []
    for i in range(np.size(t_utc)):
        hms = f"{h[i]:02d}{mi[i]:02d}{s[i] + frac[i]:05.2f}"
        la = _dm(lat[i], 2) + ("," + ("N" if lat[i] >= 0 else "S"))
        lo = _dm(lon[i], 3) + ("," + ("E" if lon[i] >= 0 else "W"))
        out.append(
            _nmea(
                f"{talker}GGA,{hms},{la},{lo},{q[i]},{sv[i]:02d},{hd[i]:.2f},{altitude_m[i]:.3f},M,"
                f"{geoid_sep_m:.3f},M,{'1.0' if q[i] in (4, 5) else ''},{'0000' if q[i] in (4, 5) else ''}"
            )
        )
        mode = {4: "R", 5: "F", 2: "D", 1: "A", 6: "E"}.get(int(q[i]), "N")
        status = "A" if q[i] > 0 else "V"
        kn = speed_kmh[i] / 1.852
        out.append(
            _nmea(
                f"{talker}RMC,{hms},{status},{la},{lo},{kn:.3f},{course_deg[i] % 360:.2f},"
                f"{d[i]:02d}{mo[i]:02d}{y[i] % 100:02d},,,{mode}"
            )
        )
        sg = sigma_m[i]
        out.append(
            _nmea(
                f"{talker}GST,{hms},{sg:.3f},{sg:.3f},{sg:.3f},0.0,{sg:.3f},{sg:.3f},{2 * sg:.3f}"
            )
        )
    return "".join(out)
