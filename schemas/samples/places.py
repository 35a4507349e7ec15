"""GB/T 2260 division codes the generator draws from: provinces, cities, counties."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROVINCES", "City", "Province", "province"]


@dataclass(frozen=True, slots=True)
class City:
    code: str
    name: str
    counties: tuple[tuple[str, str], ...]  # (code, name)


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str
    short: str  # the one-character abbreviation used in trade names
    cities: tuple[City, ...]


PROVINCES: dict[str, Province] = {
    "430000": Province("430000", "湖南省", "湘", (
        City("430100", "长沙市", (
            ("430102", "芙蓉区"), ("430103", "天心区"), ("430104", "岳麓区"),
            ("430105", "开福区"), ("430111", "雨花区"), ("430112", "望城区"),
            ("430121", "长沙县"), ("430181", "浏阳市"), ("430182", "宁乡市"),
        )),
        City("430200", "株洲市", (
            ("430202", "荷塘区"), ("430203", "芦淞区"), ("430204", "石峰区"),
            ("430211", "天元区"), ("430212", "渌口区"), ("430223", "攸县"),
            ("430224", "茶陵县"), ("430225", "炎陵县"), ("430281", "醴陵市"),
        )),
        City("430300", "湘潭市", (
            ("430302", "雨湖区"), ("430304", "岳塘区"), ("430321", "湘潭县"),
            ("430381", "湘乡市"), ("430382", "韶山市"),
        )),
        City("430400", "衡阳市", (
            ("430405", "珠晖区"), ("430406", "雁峰区"), ("430407", "石鼓区"),
            ("430408", "蒸湘区"), ("430412", "南岳区"), ("430421", "衡阳县"),
        )),
        City("430600", "岳阳市", (
            ("430602", "岳阳楼区"), ("430603", "云溪区"), ("430611", "君山区"),
            ("430621", "岳阳县"), ("430681", "汨罗市"),
        )),
        City("430700", "常德市", (
            ("430702", "武陵区"), ("430703", "鼎城区"), ("430721", "安乡县"),
            ("430781", "津市市"),
        )),
    )),
    "440000": Province("440000", "广东省", "粤", (
        City("440100", "广州市", (
            ("440103", "荔湾区"), ("440104", "越秀区"), ("440105", "海珠区"),
            ("440106", "天河区"), ("440111", "白云区"), ("440112", "黄埔区"),
        )),
        City("440300", "深圳市", (
            ("440303", "罗湖区"), ("440304", "福田区"), ("440305", "南山区"),
            ("440306", "宝安区"), ("440307", "龙岗区"),
        )),
        City("440600", "佛山市", (
            ("440604", "禅城区"), ("440605", "南海区"), ("440606", "顺德区"),
        )),
    )),
}


def province(code: str) -> Province:
    """The province by its code; a clear error names the ones that are available."""
    try:
        return PROVINCES[code]
    except KeyError:
        known = ", ".join(f"{p.code} {p.name}" for p in PROVINCES.values())
        raise ValueError(f"no sample divisions for province {code!r}; available: {known}") from None
