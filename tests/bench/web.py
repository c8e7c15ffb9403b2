"""Web portal benchmark: the call-record page and API, and the Excel export,
over 1,000,000 call records in SQLite (docs/performance.md, "Web portal").

`.venv/bin/python -m tests.bench.web [--records N] [--requests N] [--export-rows N]`

- Page time: requests through the real app (Litestar TestClient, ASGI, no
  network) as the tenant's owner, half to `/calls` (the HTML page, 100 rows)
  and half to `/api/v1/calls` (50 rows), first pages and filtered ones; p50
  and p95 in ms.
- Export: `/api/v1/calls/export.xlsx` of the newest N rows, in a child
  process that does nothing else, so its peak RSS (VmHWM) is the
  export's; the file is opened with openpyxl to count the rows.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

SITE = """
[[tenants]]
slug = "acme"
name = "Acme"

[[tenants.users]]
login = "owner@acme.example"
password = "bench password 1"
role = "owner"

[[tenants.extensions]]
number = "1001"
password = "ext-1001-secret"

[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""
STATUSES = ["answered"] * 6 + ["missed"] * 2 + ["busy", "rejected"]
REGIONS = [("0571", "浙江 杭州"), ("010", "北京"), ("020", "广东 广州"), ("", "上海")]


def environ(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LINEBOX_DATA_DIR": str(data),
        "LINEBOX_CONFIG": str(data / "none.toml"),
    }


def prepare(data: Path, records: int) -> None:
    os.environ.update(environ(data))
    from appliance import db
    from appliance import settings as settings_mod

    settings_mod.override(settings_mod.load())
    db.configure()
    db.migrate()
    import asyncio

    from appliance.sitefile.apply import apply_site

    asyncio.run(apply_site(SITE, data))
    path = data / "linebox.sqlite"
    conn = sqlite3.connect(path)
    tenant = conn.execute("SELECT id FROM tenant WHERE slug='acme'").fetchone()[0]
    start = datetime.now(UTC) - timedelta(days=365)
    step = 365 * 86400 / records
    rng = random.Random(5)
    batch = []
    t0 = time.perf_counter()
    for i in range(records):
        at = start + timedelta(seconds=i * step)
        status = rng.choice(STATUSES)
        area, region = rng.choice(REGIONS)
        batch.append(
            (
                f"bench-{i}@carrier",
                tenant,
                "4001234567",
                f"138{rng.randrange(10**8):08d}",
                area,
                region,
                "4001234567",
                "1001" if status == "answered" else "",
                str(at),  # piccolo's own text form: compares as it does
                status,
                rng.randrange(600) if status == "answered" else 0,
            )
        )
        if len(batch) == 20000:
            insert(conn, batch)
            batch = []
    insert(conn, batch)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    # The export child authenticates with an API token: a password login would
    # add argon2's 64 MiB to the peak being measured.
    from appliance.auth import core
    from appliance.auth.secret import secret_key
    from appliance.tables import User

    owner = User.select(User.id).where(User.login == "owner@acme.example").first().run_sync()
    _info, token = asyncio.run(
        core.create_api_token(secret_key(settings_mod.get()), owner["id"], "bench")
    )
    (data / "bench-token").write_text(token)
    print(f"  {records} records inserted in {time.perf_counter() - t0:.1f} s", flush=True)


def insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO call_record (call_id, tenant, hotline, caller, caller_area_code, "
        "caller_region, called, answered_by, started_at, status, talk_seconds) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def pages(data: Path, requests: int) -> tuple[float, float, float]:
    from litestar.testing import TestClient

    from appliance import settings as settings_mod
    from tests.unit.web_helpers import login
    from web.app import create_app

    s = settings_mod.load(environ=environ(data))
    settings_mod.override(s)
    queries = [
        ("/calls", {}),
        ("/api/v1/calls", {}),
        ("/calls", {"status": "missed"}),
        ("/api/v1/calls", {"status": "answered", "limit": 50}),
        ("/calls", {"offset": 1000}),
        ("/api/v1/calls", {"caller": "1380*"}),
        ("/calls", {"since": (datetime.now() - timedelta(days=31)).date().isoformat()}),
        ("/api/v1/calls", {"region": "0571"}),
    ]
    times = []
    with TestClient(app=create_app(s)) as client:
        login(client, "owner@acme.example", "bench password 1")
        for i in range(requests):
            path, params = queries[i % len(queries)]
            t0 = time.perf_counter()
            response = client.get(path, params=params)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text[:300]
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    return statistics.median(times), p95, max(times)


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM). Not ru_maxrss: Linux carries
    that over from the parent across fork and exec, so a child would report
    the benchmark's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_child(data: Path, rows: int, out: Path) -> None:
    """Runs in its own process: one export, its peak RSS printed."""
    from litestar.testing import TestClient

    from appliance import settings as settings_mod
    from web.app import create_app

    s = settings_mod.load(environ=environ(data))
    settings_mod.override(s)
    token = (data / "bench-token").read_text()
    with TestClient(app=create_app(s)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        base_rss = peak_rss_mb()
        # The newest `rows` records: the bench spreads records evenly over a
        # year. (The API counts at most 10,000: the table is counted here.)
        with sqlite3.connect(data / "linebox.sqlite") as db:
            total = db.execute("SELECT COUNT(*) FROM call_record").fetchone()[0]
        span = timedelta(days=365) * rows / total
        since = (datetime.now(UTC) - span).isoformat()
        t0 = time.perf_counter()
        with client.stream("GET", "/api/v1/calls/export.xlsx", params={"since": since}) as r:
            assert r.status_code == 200
            with out.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
        elapsed = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(f"{elapsed:.2f} {base_rss:.1f} {peak:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        export_child(Path(args.child[0]), int(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory(prefix="linebox-bench-web-") as tmp:
        data = Path(tmp)
        prepare(data, args.records)
        p50, p95, worst = pages(data, args.requests)
        print(
            f"  call-record page/API over {args.records} records, {args.requests} requests: "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms",
            flush=True,
        )
        out = data / "export.xlsx"
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.web",
                "--child",
                str(data),
                str(args.export_rows),
                str(out),
            ],
            capture_output=True,
            text=True,
            env=environ(data),
        )
        if child.returncode:
            raise SystemExit(child.stderr[-3000:])
        elapsed, base, peak = (float(x) for x in child.stdout.split()[-3:])
        import openpyxl

        book = openpyxl.load_workbook(out, read_only=True)
        rows = sum(1 for _ in book.worksheets[0].iter_rows()) - 1
        print(
            f"  export of {rows} rows: {elapsed:.1f} s, {out.stat().st_size / 1e6:.1f} MB, "
            f"peak RSS {peak:.0f} MB (app started: {base:.0f} MB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
