"""Telephone numbers: normalising callers and finding where they call from.

Chinese callers arrive as `+8613800138000`, `008613800138000`,
`13800138000`, `01012345678` or `+861012345678`; all normalise to the national
form (mobiles as 11 digits, fixed lines with their leading `0` and area code),
so one rule matches them all.
"""

from __future__ import annotations

import functools
from types import ModuleType

import msgspec
import phonenumbers
from phonenumbers.phonenumberutil import NumberParseException, PhoneNumberType

# Provinces and province-level regions, as geocoding names them at the start
# of a description ("广东省深圳市", "北京市", "新疆维吾尔自治区乌鲁木齐市").
PROVINCES = (
    "北京市",
    "天津市",
    "上海市",
    "重庆市",
    "河北省",
    "山西省",
    "辽宁省",
    "吉林省",
    "黑龙江省",
    "江苏省",
    "浙江省",
    "安徽省",
    "福建省",
    "江西省",
    "山东省",
    "河南省",
    "湖北省",
    "湖南省",
    "广东省",
    "海南省",
    "四川省",
    "贵州省",
    "云南省",
    "陕西省",
    "甘肃省",
    "青海省",
    "台湾省",
    "内蒙古自治区",
    "广西壮族自治区",
    "西藏自治区",
    "宁夏回族自治区",
    "新疆维吾尔自治区",
    "香港特别行政区",
    "澳门特别行政区",
)

# Geocoding names the autonomous regions by their short names.
_SHORT_PROVINCES = {
    "内蒙古": "内蒙古自治区",
    "广西": "广西壮族自治区",
    "西藏": "西藏自治区",
    "宁夏": "宁夏回族自治区",
    "新疆": "新疆维吾尔自治区",
    "香港": "香港特别行政区",
    "澳门": "澳门特别行政区",
}


def _geocoder() -> ModuleType:
    """phonenumbers' geocoder, imported on first use: its data is about 100 MB,
    which processes that never place a caller (an export, the worker) do not
    need. Kamailio loads it before it forks (`preload`), so its workers share
    one copy."""
    from phonenumbers import geocoder

    return geocoder


def preload() -> None:
    """Load the geocoding data now (a parent process, before it forks)."""
    region_of("13800138000")


def _split_description(description: str) -> tuple[str, str]:
    for province in PROVINCES:
        if description.startswith(province):
            return province, description[len(province) :] or province
    for short, province in _SHORT_PROVINCES.items():
        if description.startswith(short):
            return province, description[len(short) :] or province
    return "", ""


_SHORT_OF = {full: short for short, full in _SHORT_PROVINCES.items()}


def _short_name(name: str) -> str:
    """浙江省 → 浙江, 杭州市 → 杭州, 广西壮族自治区 → 广西."""
    if name in _SHORT_OF:
        return _SHORT_OF[name]
    for suffix in ("省", "市"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name.removesuffix(suffix)
    return name


class Region(msgspec.Struct, frozen=True):
    province: str = ""
    city: str = ""
    area_code: str = ""
    """Fixed lines only: mobiles carry no area code in their number."""
    mobile: bool = False

    def label(self) -> str:
        """The region as an operator reads it: 浙江省/杭州市/0571."""
        return "/".join(n for n in (self.province, self.city, self.area_code) if n)

    def names(self) -> tuple[str, ...]:
        """Every name a region rule may use for this caller: the full names
        (浙江省, 杭州市), the area code, and the short names people write
        (浙江, 杭州, 广西)."""
        full = tuple(n for n in (self.province, self.city, self.area_code) if n)
        short = tuple(_short_name(n) for n in (self.province, self.city) if n)
        return full + tuple(n for n in short if n not in full)


UNKNOWN = Region()


def normalize(number: str) -> str:
    """The national form of a caller number; other countries keep `+CC…`;
    anything that is not a number comes back stripped of separators."""
    digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+86"):
        national = digits[3:]
        # Fixed lines written internationally drop the trunk prefix 0.
        if (national and not national.startswith(("1", "0"))) or (
            national.startswith("10") and len(national) in (10, 11)
        ):
            national = "0" + national
        return national
    if len(digits) == 13 and digits.startswith("861"):
        return digits[2:]  # a mobile with the country code but no + (some carriers)
    return digits


@functools.lru_cache(maxsize=65536)
def region_of(number: str) -> Region:
    """Province, city and area code of a Chinese caller (cached)."""
    national = normalize(number)
    if not national or national.startswith("+") or not national.isdigit():
        return UNKNOWN
    try:
        parsed = phonenumbers.parse(national, "CN")
    except NumberParseException:
        return UNKNOWN
    description = _geocoder().description_for_number(parsed, "zh")
    province, city = _split_description(description)
    kind = phonenumbers.number_type(parsed)
    mobile = kind == PhoneNumberType.MOBILE
    area_code = ""
    if not mobile and national.startswith("0"):
        ndc_len = phonenumbers.length_of_geographical_area_code(parsed)
        if ndc_len:
            area_code = "0" + str(parsed.national_number)[:ndc_len]
    if not province and not area_code:
        return UNKNOWN
    return Region(province=province, city=city, area_code=area_code, mobile=mobile)


MOBILE = "mobile"
FIXED = "fixed"
SERVICE = "service"
INTERNATIONAL = "international"
SPECIAL = "special"


def kind_of(number: str) -> str:
    """What calling this number out through the trunk means, for toll-fraud
    rules: `mobile` and `fixed` (ordinary), `service` (400/800 numbers),
    `international`, or `special` (1-prefixed numbers that are not mobiles:
    premium information lines such as 168/160x, carrier short codes, and the
    IP-dialling prefixes 179xx/193xx/196xx that lead abroad)."""
    national = normalize(number)
    if national.startswith("+"):
        return INTERNATIONAL
    if national.startswith(("400", "800")) and len(national) == 10:
        return SERVICE
    if national.startswith("1"):
        return MOBILE if len(national) == 11 else SPECIAL
    return FIXED
