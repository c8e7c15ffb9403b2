"""How long one routing decision takes: `decide()` over a plan of 100
hotlines × 20 destinations × 50 rules, the path Kamailio runs for every call.

    python -m tests.bench.decide [--calls 200000]

Each hotline's 50 routes are built so that a call walks most of them before
one matches (schedules that are closed, regions that differ), then rings a
group of 20; callers are a mix of mobiles and fixed lines from every
province, normalised and geocoded as Kamailio does (region lookups cached).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import time

from appliance.numbers import region_of
from appliance.routing.compile import parse_weekly
from appliance.routing.decide import Facts, decide
from appliance.routing.plan import (
    Condition,
    ExtensionPlan,
    GroupPlan,
    HotlinePlan,
    Plan,
    RoutePlan,
    SchedulePlan,
    TenantPlan,
    TrunkPlan,
)

HOTLINES, DESTINATIONS, RULES = 100, 20, 50
PROVINCES = ["广东省", "浙江省", "江苏省", "北京市", "上海市", "四川省", "湖北省", "山东省"]


def build_plan() -> Plan:
    extensions = {
        f"{1000 + i}": ExtensionPlan(number=f"{1000 + i}", tenant="t", ha1="0" * 32)
        for i in range(DESTINATIONS * 5)
    }
    groups = {
        f"g{g}": GroupPlan(
            name=f"g{g}",
            strategy=("sequential", "round_robin", "sticky", "random")[g % 4],
            ring_timeout=15,
            members=tuple(
                f"ext:{1000 + (g * 7 + i) % len(extensions)}" for i in range(DESTINATIONS)
            ),
        )
        for g in range(10)
    }
    schedules = {
        "office": SchedulePlan(
            name="office",
            ranges=tuple(parse_weekly("mon-fri 08:30-17:30") + parse_weekly("sat 08:30-12:00")),
            holidays="cn",
        ),
        "night": SchedulePlan(name="night", ranges=tuple(parse_weekly("mon-sun 22:00-06:00"))),
    }
    hotlines = {}
    for h in range(HOTLINES):
        routes = []
        for r in range(RULES - 2):
            if r % 2:
                when = Condition(schedule="night")
            else:
                when = Condition(regions=(f"不存在的地区{r}", f"0{900 + r}"))
            routes.append(RoutePlan(when=when, to=f"group:g{r % 10}"))
        routes.append(
            RoutePlan(when=Condition(regions=tuple(PROVINCES[:4])), to=f"group:g{h % 10}")
        )
        routes.append(
            RoutePlan(split=((f"group:g{(h + 1) % 10}", 70), (f"group:g{(h + 2) % 10}", 30)))
        )
        number = f"400{h:07d}"
        hotlines[number] = HotlinePlan(
            number=number,
            tenant="t",
            blacklist=(*tuple(f"1330000{i:04d}" for i in range(50)), "0571*"),
            blocked_regions=("新疆维吾尔自治区",),
            routes=tuple(routes),
            fallback_busy=(f"group:g{h % 10}",),
            fallback_no_answer=("voicemail",),
        )
    return Plan(
        version="bench",
        compiled_at=0,
        domain="bench",
        hotlines=hotlines,
        extensions=extensions,
        tenants={"t": TenantPlan(slug="t", groups=groups, schedules=schedules)},
        trunks=(
            TrunkPlan(
                name="carrier",
                gateways=("127.0.0.1",),
                sources=("127.0.0.1",),
                dids=tuple(hotlines),
            ),
        ),
    )


def callers(n: int) -> list[str]:
    rng = random.Random(7)
    prefixes = ["138", "139", "186", "150", "0571", "020", "010", "0755", "028", "+86136"]
    return [rng.choice(prefixes) + "".join(rng.choices("0123456789", k=8)) for _ in range(n)]


def run(calls: int, explain: bool = False) -> dict[str, float]:
    plan = build_plan()
    gc.freeze()  # as PlanFile does in Kamailio after loading a plan
    numbers = list(plan.hotlines)
    pool = callers(5000)
    now = dt.datetime(2026, 12, 31, 13, 0, tzinfo=dt.UTC)  # 21:00 in Shanghai: office closed
    samples = []
    for i in range(calls):
        caller = pool[i % len(pool)]
        start = time.perf_counter_ns()
        facts = Facts(
            called=numbers[i % HOTLINES],
            caller=caller,
            region=region_of(caller),
            trunk="carrier",
            sequence=i,
        )
        decision = decide(plan, facts, now, explain=explain)
        samples.append(time.perf_counter_ns() - start)
        assert decision.action in ("ring", "reject"), decision
    samples.sort()
    return {
        "calls": calls,
        "median_us": statistics.median(samples) / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "max_us": samples[-1] / 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    for explain, who in ((False, "as Kamailio calls it"), (True, "explained, as the simulator")):
        result = run(args.calls, explain)
        print(
            f"decide() {who}: {HOTLINES} hotlines × {DESTINATIONS} destinations × {RULES} "
            f"rules, {result['calls']} calls (facts included): median "
            f"{result['median_us']:.1f} µs, p99 {result['p99_us']:.1f} µs, "
            f"max {result['max_us']:.0f} µs"
        )


if __name__ == "__main__":
    main()
