"""Web UI benchmark: the history page over a large audit log (first page and filtered pages, server time), a
streamed export's memory, and how fast a new held call reaches an open queue page.

Airlock runs as its own process (`airlock serve`) on SQLite and on PostgreSQL, with AIRLOCK_BENCH_AUDIT_EVENTS
(default 1,000,000) audit events loaded straight into the table first. The loaded rows are realistic in shape
(tools, grants, outcomes, people, channels, reasons) but are not hash-chained: the pages under test never verify.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psycopg
from websockets.asyncio.client import connect
from websockets.typing import Origin

from bench.approvals_bench import configure, rss_mib, serve
from bench.gateway_bench import Target, free_port, session, wait_http
from service.db import migrate
from service.db.engine import make_engine

EVENTS = int(os.environ.get("AIRLOCK_BENCH_AUDIT_EVENTS", "1000000"))
PG_ADMIN = os.environ.get("AIRLOCK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TOOLS = ["generate_image", "edit_image", "get_model_capabilities", "search", "read_file", "send_email"]
OUTCOMES = [("call.allowed", "allow", 70), ("call.denied", "deny", 10), ("call.rate_limited", "rate_limited", 5),
            ("call.held", "hold", 5), ("call.completed", "succeeded", 10)]  # fmt: skip
PEOPLE = ["ana", "ben", "chloe", "dev"]
CHANNELS = ["web", "slack", "api", "cli"]
COLUMNS = ("seq", "occurred_at", "kind", "action", "actor", "grant_id", "grant_name", "upstream", "tool", "outcome",
           "rule", "reason", "cost_micros", "argument_keys", "arguments_digest", "request_id", "details", "prev_hash",
           "hash")  # fmt: skip


def synthetic_events(count: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(7)
    weights = [w for _, _, w in OUTCOMES]
    step = timedelta(days=30) / count
    for seq in range(1, count + 1):
        at = start + step * seq
        grant = rng.randrange(1, 21)
        tool = TOOLS[rng.randrange(len(TOOLS))]
        if rng.random() < 0.04:  # a person's decision on a held request
            person, channel = rng.choice(PEOPLE), rng.choice(CHANNELS)
            approved = rng.random() < 0.7
            yield (seq, at, "request", "request.approved" if approved else "request.rejected", f"user:{person}", grant,
                   None, "imagegen", tool, "approved" if approved else "rejected", f"/tools/{tool}/require_approval",
                   None if approved else "too expensive for a draft", None, None, None, seq // 3,
                   json.dumps({"channel": channel}), "0" * 64, "0" * 64)  # fmt: skip
            continue
        action, outcome, _ = rng.choices(OUTCOMES, weights)[0]
        reason = "Saving images to server folders is not allowed." if outcome == "deny" else None
        if seq % 40_000 == 0:  # 25 in a million: what a search that matches little finds
            reason = f"Monthly budget of grant-{grant} exceeded"
        yield (seq, at, "call", action, f"agent:grant-{grant}", grant, f"grant-{grant}", "imagegen", tool, outcome,
               f"/tools/{tool}", reason, rng.randrange(0, 200_000), json.dumps(["model", "prompt"]), "ab" * 32, None,
               json.dumps({"latency_ms": 3.2}), "0" * 64, "0" * 64)  # fmt: skip


def load_sqlite(url: str, start: datetime) -> None:
    engine = make_engine(url)
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    marks = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({marks})"
    batch: list[tuple[Any, ...]] = []
    for row in synthetic_events(EVENTS, start):
        batch.append((*row[:1], row[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *row[2:]))
        if len(batch) == 20_000:
            cursor.executemany(sql, batch)
            batch.clear()
    if batch:
        cursor.executemany(sql, batch)
    cursor.execute("UPDATE audit_chain_head SET seq = ? WHERE id = 1", (EVENTS,))
    raw.commit()
    cursor.execute("ANALYZE")
    raw.close()
    engine.dispose()


def load_postgres(url: str, start: datetime) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in synthetic_events(EVENTS, start):
                copy.write_row(row)
        cursor.execute("UPDATE audit_chain_head SET seq = %s WHERE id = 1", (EVENTS,))
        conn.commit()
        conn.autocommit = True
        cursor.execute("VACUUM ANALYZE audit_events")


def start_airlock(workdir: Path, database_url: str | None, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    path, airlock, token = configure(workdir, port, pending_cap=1000, database_url=database_url)
    password = json.loads(airlock("users", "create", "root", "--role", "admin", "--json"))["password"]
    return serve(path), token, password


def sign_in(base: str, password: str) -> httpx2.Client:
    web = httpx2.Client(base_url=base, timeout=120)
    form = web.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    answer = web.post("/login", data={"username": "root", "password": password, "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.text
    return web


def timed_pages(web: httpx2.Client, label: str) -> None:
    first = web.get("/history").text
    cursor = re.search(r'href="/history\?cursor=(\d+)"', first)
    cases = {
        "first page": "/history",
        "next page (cursor)": f"/history?cursor={cursor.group(1) if cursor else ''}",
        "outcome=deny": "/history?outcome=deny",
        "tool + grant": "/history?tool=edit_image&grant=bench",
        "approver + channel": "/history?approver=ana&channel=slack",
        "last day, outcome=hold": "/history?since="
        + (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        + "&outcome=hold",
        "text, common in reason": "/history?q=folders",
        "text, common in tool": "/history?q=GENER",
        "text, rare (25 events)": "/history?q=budget",
        # The worst cases: a filter that matches nothing, and the oldest day of the log.
        "text matching nothing": "/history?q=no-such-text-anywhere",
        "text, 2 chars, nothing": "/history?q=zq",
        "oldest day, tool=search": "/history?tool=search&since="
        + (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        + "&until="
        + (datetime.now(UTC) - timedelta(days=29)).strftime("%Y-%m-%dT%H:%M"),
    }
    print(f"  {label}: history page, server time (request to last byte over loopback), 15 rounds each")
    for name, url in cases.items():
        web.get(url)  # warm
        total, database = [], []
        for _ in range(15):
            started = time.perf_counter()
            response = web.get(url)
            total.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text[:300]
            database.append(float(response.headers["server-timing"].split("dur=")[1]))
        rows = response.text.count("data-outcome=")
        print(f"    {name:26} p50 {statistics.median(total):6.1f} ms  max {max(total):6.1f} ms"
              f"  (database {statistics.median(database):6.1f} ms, {rows} rows)")  # fmt: skip


def timed_export(web: httpx2.Client, pid: int, label: str) -> None:
    before = rss_mib(pid)
    peak = before
    started = time.perf_counter()
    size = lines = 0
    with web.stream("GET", "/history/export", params={"format": "csv", "outcome": "deny"}) as response:
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
            peak = max(peak, rss_mib(pid)) if lines % 5000 < 50 else peak
    elapsed = time.perf_counter() - started
    print(f"  {label}: export of outcome=deny as CSV: {lines - 1:,} events, {size / 2**20:.1f} MiB in {elapsed:.1f} s"
          f" ({(lines - 1) / elapsed:,.0f} events/s); Airlock RSS {before:.0f} -> peak {peak:.0f} MiB")  # fmt: skip


async def held_to_page(base: str, cookie: str, token: str, rounds: int = 20) -> list[float]:
    """From the agent sending a call that is held to the open queue page having its row (WebSocket message, then
    the row's HTML fetched as the page's script does)."""
    url = base.replace("http://", "ws://") + "/ws/queue"
    latencies: list[float] = []
    ids: list[int] = []
    target = Target("airlock", base + "/mcp", token, 0)
    async with (
        connect(url, origin=Origin(base), additional_headers={"Cookie": cookie}) as socket,
        httpx2.AsyncClient(base_url=base, headers={"Cookie": cookie}, timeout=30) as web,
        session(target) as client,
    ):
        assert json.loads(await socket.recv())["kind"] == "hello"
        async with anyio.create_task_group() as group:
            for i in range(rounds):
                started = time.perf_counter()
                group.start_soon(client.call_tool, "echo", {"text": f"to the page {i}"})
                while True:
                    message = json.loads(await socket.recv())
                    if message["kind"] == "created":
                        break
                row = await web.get(f"/queue/rows/{message['request_id']}")
                assert row.status_code == 200
                assert "data-request-id" in row.text
                latencies.append((time.perf_counter() - started) * 1000)
                ids.append(int(message["request_id"]))
            # Let the agents go (a batch rejection from the page), so every call gets its answer.
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', (await web.get("/")).text)
            assert csrf is not None
            form = {
                "csrf_token": csrf.group(1),
                "action": "reject",
                "reason": "benchmark",
                "request_id": [str(i) for i in ids],
            }
            answer = await web.post("/queue/batch", data=form)
            assert answer.status_code == 303, answer.text[:300]
    return latencies


def run_one(label: str, database_url: str | None, load: Any, workdir: Path) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    port = free_port()
    if database_url:
        migrate.upgrade(database_url)
    else:
        migrate.upgrade(f"sqlite:///{workdir / 'data' / 'airlock.db'}")
    started = time.perf_counter()
    load(database_url or f"sqlite:///{workdir / 'data' / 'airlock.db'}", start)
    print(f"  {label}: loaded {EVENTS:,} audit events in {time.perf_counter() - started:.0f} s")
    process, token, password = start_airlock(workdir, database_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", timeout=120)
        web = sign_in(base, password)
        try:
            timed_pages(web, label)
            timed_export(web, process.pid, label)
            cookie = f"airlock_session={web.cookies['airlock_session']}"
        finally:
            web.close()
        latencies = anyio.run(held_to_page, base, cookie, token)
        latencies.sort()
        print(f"  {label}: a new held call reaches an open queue page: p50 {statistics.median(latencies):.1f} ms,"
              f" max {latencies[-1]:.1f} ms over {len(latencies)} calls (target <= 200 ms)")  # fmt: skip
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    print(f"Web UI ({EVENTS:,} audit events; AIRLOCK_BENCH_AUDIT_EVENTS to change)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "sqlite"
        (workdir / "data").mkdir(parents=True)
        run_one("SQLite", None, load_sqlite, workdir)
    name = f"airlock_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            run_one("PostgreSQL", url, load_postgres, Path(tmp))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
