"""VINs, asset codes and JCS against peer libraries (vininfo, python-stdnum, rfc8785)."""

from __future__ import annotations

import math
import string

import pytest
import rfc8785
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum.iso7064 import mod_37_36
from vininfo import Vin

from autolien.errors import InvalidAssetCodeError, InvalidVINError
from autolien.ledger.identity import asset_code, validate_asset_code, validate_vin, vin_check_digit
from autolien.ledger.jcs import canonicalize

VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
vin_bodies = st.text(alphabet=VIN_ALPHABET, min_size=17, max_size=17)


@given(vin_bodies)
def test_check_digit_matches_vininfo(body: str) -> None:
    vin = body[:8] + vin_check_digit(body) + body[9:]
    # vininfo skips makers that do not use the check digit; compare the rest.
    assume(getattr(Vin(vin).assembler, "uses_sae_checkdigit", True))
    assert Vin(vin).verify_checksum(check_year=False)
    assert validate_vin(vin.lower()) == vin
    wrong = next(c for c in "0123456789X" if c != vin[8])
    bad = vin[:8] + wrong + vin[9:]
    assert not Vin(bad).verify_checksum(check_year=False)
    with pytest.raises(InvalidVINError, match="check digit"):
        validate_vin(bad)
    assert validate_vin(bad, check_digit=False) == bad


def test_vin_shape_errors() -> None:
    with pytest.raises(InvalidVINError, match="17 characters"):
        validate_vin("1M8GDM9AXKP04278")
    with pytest.raises(InvalidVINError, match="not allowed"):
        validate_vin("1M8GDM9AXKP04278O")
    with pytest.raises(TypeError):
        validate_vin(12345)  # type: ignore[arg-type]


@given(vin_bodies, st.text(min_size=1, max_size=30))
def test_asset_code_check_character_is_iso7064_mod_37_36(body: str, pledge: str) -> None:
    code = asset_code(body, pledge)
    assert len(code) == 19
    assert code.startswith("AL")
    assert set(code) <= set(string.digits + string.ascii_uppercase)
    assert mod_37_36.is_valid(code)
    assert validate_asset_code("-".join([code[:7], code[7:13], code[13:]]).lower()) == code
    assert asset_code(body, pledge) == code  # stable


def test_asset_code_detects_single_errors() -> None:
    code = asset_code("LSVAU2180N2183294", "pledge-1")
    for i in range(2, 19):
        for c in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            if c == code[i]:
                continue
            typo = code[:i] + c + code[i + 1 :]
            with pytest.raises(InvalidAssetCodeError):
                validate_asset_code(typo)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_jcs_matches_rfc8785_package(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


# Without floats, canonicalize takes its json.dumps fast path; keys here
# include characters beyond the BMP, where UTF-16 order differs from code points.
json_values_without_floats = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(codec="utf-8"), max_size=4), children, max_size=5
        )
    ),
    max_leaves=15,
)


@given(json_values_without_floats)
def test_jcs_fast_path_matches_rfc8785_package(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


def test_jcs_key_order_is_utf16_not_code_point() -> None:
    # U+1F600 sorts before U+FFFD in UTF-16 (surrogate D83D < FFFD).
    value = {"\ufffd": 1, "\U0001f600": 2}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert canonicalize(value).decode().index("\U0001f600") < canonicalize(value).decode().index(
        "\ufffd"
    )


def test_jcs_rfc8785_number_examples() -> None:
    # Appendix B of RFC 8785: IEEE 754 value -> canonical text.
    assert canonicalize(-0.0) == b"0"
    cases = {
        0.0: "0",
        5e-324: "5e-324",
        1.7976931348623157e308: "1.7976931348623157e+308",
        9007199254740992.0: "9007199254740992",
        295147905179352830000.0: "295147905179352830000",
        1e21: "1e+21",
        1e-7: "1e-7",
        333333333.3333333: "333333333.3333333",
        0.000001: "0.000001",
    }
    for value, text in cases.items():
        assert canonicalize(value).decode() == text
    with pytest.raises(ValueError, match="JSON"):
        canonicalize(math.nan)
    with pytest.raises(ValueError, match="I-JSON"):
        canonicalize(2**53)
