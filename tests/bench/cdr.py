"""Call records and billing: how fast the worker ingests call events, and how
fast the portal's call-record query answers for one tenant over 1,000,000
records.

    python -m tests.bench.cdr [--calls 3000] [--records 1000000] [--database URL]

Without --database it uses a fresh SQLite file in a temporary directory;
`--database postgresql://…` runs against an (empty, throw-away) PostgreSQL
database. Ingestion goes through `merge_event` (the task's body: merge,
settle, charge, count) one event after another, as one worker thread does;
the query is the one `/api/v1/calls` runs (first page of 50 and the total),
filtered by tenant, a date range and a status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

from appliance import db
from appliance import settings as settings_mod

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def setup(data_dir: Path, url: str | None) -> None:
    environ = {"LINEBOX_DATA_DIR": str(data_dir), "LINEBOX_CONFIG": str(data_dir / "none.toml")}
    if url:
        environ["LINEBOX_DATABASE_URL"] = url
    settings_mod.override(settings_mod.load(environ=environ))
    engine = db.configure()
    if url:
        # A throw-away database: start from an empty schema every run.
        import asyncio

        async def reset() -> None:
            await engine.run_ddl("DROP SCHEMA public CASCADE")
            await engine.run_ddl("CREATE SCHEMA public")

        asyncio.run(reset())
    db.migrate()


async def seed_tenants() -> None:
    from appliance.tables import Hotline, Tenant

    for slug, number in (("acme", "4001234567"), ("other", "4007654321")):
        tid = (
            await Tenant.insert(
                Tenant(
                    slug=slug,
                    name=slug,
                    balance_fen=10**9,
                    billing={"rates_fen_per_minute": {"tel": 60}, "step_seconds": 6},
                )
            )
        )[0]["id"]
        await Hotline.insert(Hotline(tenant=tid, number=number))


async def ingest(calls: int) -> float:
    """Events per second through merge_event (3 per call: start, answer, end)."""
    from appliance.worker.cdr import ANSWER, END, START, CallEvent, merge_event

    now = dt.datetime.now(dt.UTC)
    t0 = now.timestamp() - 3600
    events = []
    for i in range(calls):
        cid = f"bench-{i}"
        at = t0 + i
        events += [
            CallEvent(call_id=cid, type=START, at=at, kind="hotline", tenant="acme",
                      hotline="4001234567", caller=f"138{i:08d}", called="4001234567"),
            CallEvent(call_id=cid, type=ANSWER, at=at + 3, answered_by="13912345678",
                      answered_kind="tel"),
            CallEvent(call_id=cid, type=END, at=at + 65, status="answered", sip_code=200),
        ]  # fmt: skip
    started = time.perf_counter()
    for event in events:
        await merge_event(event, now=now)
    return len(events) / (time.perf_counter() - started)


STATUSES = ["answered"] * 6 + ["missed"] * 2 + ["busy", "cancelled", "rejected"]


async def bulk_records(n: int) -> None:
    """n records over a year, 90 % of them the tenant under test."""
    from appliance.tables import CallRecord, Tenant

    ids = {t["slug"]: t["id"] for t in await Tenant.select(Tenant.id, Tenant.slug)}
    rng = random.Random(7)
    batch = 500  # PostgreSQL takes at most 32,767 parameters per statement
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            tenant = "acme" if rng.random() < 0.9 else "other"
            when = T0 + dt.timedelta(seconds=rng.randrange(365 * 86400))
            status = rng.choice(STATUSES)
            rows.append(
                CallRecord(
                    call_id=f"bulk-{i}", tenant=ids[tenant], kind="hotline",
                    hotline="4001234567" if tenant == "acme" else "4007654321",
                    caller=f"13{rng.randrange(10**9):09d}", caller_region="北京市 北京市",
                    started_at=when, ended_at=when + dt.timedelta(seconds=60), status=status,
                    talk_seconds=60 if status == "answered" else 0, billed=True,
                )
            )  # fmt: skip
        await CallRecord.insert(*rows)


async def query_p95(runs: int) -> tuple[float, float, int]:
    """p50 and p95 (ms) of the first page + total for a month and a status."""
    from appliance.tables import CallRecord, Tenant

    tenant = (await Tenant.select(Tenant.id).where(Tenant.slug == "acme").first())["id"]
    rng = random.Random(11)
    times = []
    total = 0
    for _ in range(runs):
        since = T0 + dt.timedelta(days=rng.randrange(330))
        until = since + dt.timedelta(days=31)
        conditions = [
            CallRecord.tenant == tenant,
            CallRecord.status == rng.choice(["answered", "missed", "busy"]),
            CallRecord.started_at >= since,
            CallRecord.started_at < until,
        ]
        started = time.perf_counter()
        await (
            CallRecord.select()
            .where(*conditions)
            .order_by(CallRecord.started_at, CallRecord._meta.primary_key, ascending=False)
            .limit(50)
        )
        total = await CallRecord.count().where(*conditions)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--database", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="linebox-bench-") as tmp:
        setup(Path(tmp), args.database)
        engine = "PostgreSQL" if args.database else "SQLite (WAL)"

        async def run() -> None:
            await seed_tenants()
            rate = await ingest(args.calls)
            print(f"{engine}: ingestion {rate:,.0f} events/s ({args.calls} calls, 3 events each,"
                  " merged, settled and charged)")  # fmt: skip
            started = time.perf_counter()
            await bulk_records(args.records)
            took = time.perf_counter() - started
            print(f"{engine}: {args.records:,} records loaded in {took:.0f} s")
            p50, p95, total = await query_p95(args.runs)
            print(
                f"{engine}: call-record query (tenant, 31 days, status; page 1 + total "
                f"≈{total:,}): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {args.runs} runs"
            )

        asyncio.run(run())


if __name__ == "__main__":
    main()
