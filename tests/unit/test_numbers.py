"""Caller numbers: one national form for every way a carrier writes them, and
the province, city and area code routing rules match on."""

from __future__ import annotations

import pytest

from appliance.numbers import UNKNOWN, Region, normalize, region_of


@pytest.mark.parametrize(
    ("written", "national"),
    [
        # Mobiles: 11 digits, however the carrier prefixes them.
        pytest.param("13800138000", "13800138000", id="mobile"),
        pytest.param("+8613800138000", "13800138000", id="mobile-plus86"),
        pytest.param("008613800138000", "13800138000", id="mobile-0086"),
        pytest.param("8613800138000", "13800138000", id="mobile-86-without-plus"),
        pytest.param("+86 138 0013 8000", "13800138000", id="mobile-spaced"),
        # Fixed lines keep their trunk prefix 0 and area code.
        pytest.param("057188886666", "057188886666", id="hangzhou"),
        pytest.param("+8657188886666", "057188886666", id="hangzhou-plus86-without-0"),
        pytest.param("+86057188886666", "057188886666", id="hangzhou-plus86-with-0"),
        pytest.param("0086 571 8888 6666", "057188886666", id="hangzhou-0086-spaced"),
        pytest.param("0571-8888-6666", "057188886666", id="hangzhou-dashed"),
        # Beijing's area code starts with 1, like a mobile: told apart by length.
        pytest.param("01062345678", "01062345678", id="beijing"),
        pytest.param("+861062345678", "01062345678", id="beijing-plus86-without-0"),
        pytest.param("008601062345678", "01062345678", id="beijing-0086-with-0"),
        pytest.param("(010) 6234-5678", "01062345678", id="beijing-punctuated"),
        # A local number without area code stays as dialled.
        pytest.param("88886666", "88886666", id="local-fixed"),
        # Other countries keep +CC.
        pytest.param("+14155550123", "+14155550123", id="usa"),
        pytest.param("0014155550123", "+14155550123", id="usa-00"),
        pytest.param("+442079460000", "+442079460000", id="uk"),
        # 400 numbers and extensions pass through.
        pytest.param("400-123-4567", "4001234567", id="hotline-dashed"),
        pytest.param("8001", "8001", id="extension"),
        # Not a number at all: nothing to match on.
        pytest.param("anonymous", "", id="anonymous"),
        pytest.param("", "", id="empty"),
    ],
)
def test_callers_normalise_to_one_national_form(written: str, national: str) -> None:
    assert normalize(written) == national


def test_beijing_mobile_is_in_beijing_without_area_code() -> None:
    assert region_of("+8613800138000") == Region(
        province="北京市", city="北京市", area_code="", mobile=True
    )


def test_hangzhou_fixed_line_has_province_city_and_area_code() -> None:
    region = region_of("057188886666")

    assert region == Region(province="浙江省", city="杭州市", area_code="0571", mobile=False)
    assert region.names() == ("浙江省", "杭州市", "0571", "浙江", "杭州")


def test_a_region_answers_to_the_short_names_people_write() -> None:
    # Site files and the portal say 浙江, 广西, 北京: they must match too.
    assert set(Region(province="广西壮族自治区", city="南宁市").names()) >= {"广西", "南宁"}
    assert "北京" in region_of("13800138000").names()
    assert Region(province="香港特别行政区", city="香港特别行政区").names()[-1] == "香港"


def test_hangzhou_fixed_line_written_internationally_is_found_the_same() -> None:
    assert region_of("+8657188886666") == region_of("057188886666")


def test_beijing_fixed_line_has_area_code_010() -> None:
    assert region_of("+861062345678") == Region(
        province="北京市", city="北京市", area_code="010", mobile=False
    )


def test_urumqi_fixed_line_names_the_autonomous_region_in_full() -> None:
    region = region_of("09918888666")

    assert region.province == "新疆维吾尔自治区"
    assert region.city == "乌鲁木齐市"
    assert region.area_code == "0991"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("4001234567", id="400-hotline"),
        pytest.param("8001", id="extension"),
        pytest.param("+14155550123", id="foreign"),
        pytest.param("anonymous", id="anonymous"),
        pytest.param("", id="empty"),
    ],
)
def test_numbers_without_a_chinese_region_are_unknown(number: str) -> None:
    assert region_of(number) == UNKNOWN
    assert region_of(number).names() == ()
