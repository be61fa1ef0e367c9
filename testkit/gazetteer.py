"""A generated gazetteer of the demo city (around testkit.geo.CENTER): plausible Chinese names with English
aliases and addresses, made up from word lists, never copied from a map.

    python -m testkit.gazetteer --count 300 --seed 13 > data/places-sample.csv

The shipped sample (data/places-sample.csv) is this command's output; bench/places.py makes 100,000.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import random
import sys
from collections.abc import Iterator

from testkit.geo import CENTER

DISTRICTS = [("黄浦", "Huangpu"), ("静安", "Jing'an"), ("徐汇", "Xuhui"), ("长宁", "Changning"), ("普陀", "Putuo"),
             ("虹口", "Hongkou"), ("杨浦", "Yangpu"), ("浦东", "Pudong"), ("闵行", "Minhang"), ("宝山", "Baoshan")]
ROADS = [("和平", "Heping"), ("幸福", "Xingfu"), ("东方", "Dongfang"), ("春晖", "Chunhui"), ("明德", "Mingde"),
         ("新华", "Xinhua"), ("育才", "Yucai"), ("康乐", "Kangle"), ("光明", "Guangming"), ("长青", "Changqing"),
         ("丰收", "Fengshou"), ("建设", "Jianshe"), ("团结", "Tuanjie"), ("友谊", "Youyi"), ("民生", "Minsheng"),
         ("青云", "Qingyun"), ("桂林", "Guilin"), ("枫林", "Fenglin"), ("松涛", "Songtao"), ("金桥", "Jinqiao"),
         ("银杏", "Yinxing"), ("海棠", "Haitang"), ("兰亭", "Lanting"), ("翠竹", "Cuizhu"), ("临江", "Linjiang")]
# a place's own name: two characters, as names are made (華 + 平, "Huaping"), 900 of them
FIRST = list(zip("华明安康德和新长福永金瑞嘉兴宏东南西北春桂松青文仁光泰平秀海",
                 "Hua Ming An Kang De He Xin Chang Fu Yong Jin Rui Jia Xing Hong Dong Nan Xi Bei Chun Gui Song Qing"
                 " Wen Ren Guang Tai Ping Xiu Hai".split()))
SECOND = list(zip("平华源盛丰林阳宁泉园峰苑庆乐晖云山湖江河桥新安达通福祥和明光",
                  "ping hua yuan sheng feng lin yang ning quan yuan feng yuan qing le hui yun shan hu jiang he qiao"
                  " xin an da tong fu xiang he ming guang".split()))
ROAD_KINDS = [("路", "Road"), ("街", "Street"), ("大道", "Avenue"), ("弄", "Lane")]
KINDS = [("医院", "Hospital"), ("社区卫生服务中心", "Community Health Centre"), ("小学", "Primary School"),
         ("中学", "Middle School"), ("派出所", "Police Station"), ("消防站", "Fire Station"),
         ("菜市场", "Wet Market"), ("公园", "Park"), ("地铁站", "Metro Station"), ("小区", "Residential Estate"),
         ("超市", "Supermarket"), ("图书馆", "Library"), ("居委会", "Neighbourhood Committee"),
         ("养老院", "Care Home"), ("体育馆", "Sports Hall"), ("汽车站", "Bus Station"), ("广场", "Square"),
         ("酒店", "Hotel"), ("银行", "Bank"), ("邮局", "Post Office")]


def places(count: int, seed: int = 13, radius_km: float = 12.0) -> Iterator[dict[str, str]]:
    """`count` distinct places (name + address) around the city centre, each a CSV row's fields."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    while len(seen) < count:
        (dz, de), (kz, ke) = rng.choice(DISTRICTS), rng.choice(KINDS)
        (az, ae), (bz, be) = rng.choice(FIRST), rng.choice(SECOND)
        pz, pe = az + bz, ae + be
        (rz, re_), (rkz, rke) = rng.choice(ROADS), rng.choice(ROAD_KINDS)
        no = rng.randint(1, 1500)
        name = f"{pz}{kz}" if rng.random() < 0.5 else f"{dz}{pz}{kz}"
        address = f"{dz}区{rz}{rkz}{no}号 ({no} {re_} {rke}, {de})"
        if (name, address) in seen:
            continue
        seen.add((name, address))
        r = radius_km * math.sqrt(rng.random())
        a = rng.random() * 2 * math.pi
        lat = CENTER[0] + r * math.cos(a) / 111.0
        lon = CENTER[1] + r * math.sin(a) / (111.0 * math.cos(math.radians(CENTER[0])))
        aliases = [f"{pe} {ke}"]
        if name.startswith(dz):
            aliases.append(f"{de} {pe} {ke}")
        yield {"name": name, "address": address, "lat": f"{lat:.6f}", "lon": f"{lon:.6f}",
               "aliases": "|".join(aliases)}


def to_csv(rows: Iterator[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["name", "address", "lat", "lon", "aliases"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args()
    sys.stdout.write(to_csv(places(args.count, args.seed)))


if __name__ == "__main__":
    main()
