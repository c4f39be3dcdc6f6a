"""The read API under load (issue 16.3): many clients at once, and a scoring run writing.

A synthetic score history (``accounts`` accounts x ``weeks`` weekly runs, every column the
scorer stores) is written through :func:`ka_ml.scoring.score_history.write_run`, the
scorer's own writer. ``ka-ml serve`` serves it on 127.0.0.1 in a subprocess, as a user
runs it. ``clients`` closed-loop clients (asyncio, HTTP/1.1 keep-alive, no think time;
the loopback only) then send a mix of requests for ``seconds``:

- 60% ``GET /accounts/{id}`` (a random account: its latest score, reasons and history),
- 30% ``GET /accounts?light=red&owner=...`` (a random owner's red accounts, one page),
- 10% ``GET /portfolio`` (the latest week's summary),

and the same again while another process writes the following weeks with ``write_run``
back to back (a scoring run landing, repeatedly). Every response is checked against the
generator: an account's probability, light and history must be those of the week the
response names, with every earlier week and no later one; a list's total must be that
owner's red count of its week; the portfolio must count every account of its week with
that week's lights. A response from a half-written week, or mixing two weeks, counts as
inconsistent (an error).

Latency is measured by the client, from sending the request to the last byte of the body.
The client shares the machine with the server (and, in the second phase, the writer).
Each server is warmed up first, outside the measured window: its first ``/portfolio``
starts the summaries' worker process (about 2 s) and computes the latest week.

    python -m ka_ml.bench.api_load [--quick] [--accounts N] [--seconds S] [--clients C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TITLE = "### Read API under load (issue 16.3)"
MIX = (("account", 0.6), ("list", 0.3), ("portfolio", 0.1))
ENDPOINTS = {
    "account": "/accounts/{id}",
    "list": "/accounts?light=red&owner=...",
    "portfolio": "/portfolio",
}
FIRST_AS_OF = pd.Timestamp("2026-01-05")
SEED = 16
LIGHTS = ("red", "yellow", "green")
P99_TARGET_MS = 200.0  # issue 16.3: /accounts/{id}, on the 2-core machine
MARK = "@@API_LOAD@@"


@dataclass(frozen=True)
class LoadPlan:
    name: str
    accounts: int
    weeks: int  # stored before the load starts
    owners: int
    clients: int
    seconds: float  # per phase
    max_new_weeks: int  # the writer's budget in each writing phase
    workers: tuple[int, ...] = (1,)  # `ka-ml serve --workers`: each runs both phases


FULL = LoadPlan("full", 100_000, 8, 200, 50, 60.0, 30, (1, 2))
QUICK = LoadPlan("quick", 1_000, 3, 20, 10, 1.0, 5)


# -- the synthetic history ------------------------------------------------------------------
class World:
    """A deterministic portfolio: ids, owners, and for each week every account's churn
    probability and light (top 10% red, next 20% yellow; 5% lapsed, unlit)."""

    def __init__(self, accounts: int, owners: int, seed: int = SEED) -> None:
        self.n = accounts
        self.seed = seed
        self.ids = np.array([f"KA{i:06d}" for i in range(accounts)])
        rng = np.random.default_rng(seed)
        self.owner_names = np.array([f"owner-{k:03d}" for k in range(owners)])
        self.owner_of = rng.integers(0, owners, accounts)
        self.lapsed = rng.random(accounts) < 0.05
        self.revenue = np.round(rng.lognormal(11, 1.2, accounts), 2)
        self.tier = np.where(
            self.revenue > np.quantile(self.revenue, 0.9),
            "A",
            np.where(self.revenue > np.quantile(self.revenue, 0.6), "B", "C"),
        )
        self._cores: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def as_of(self, week: int) -> pd.Timestamp:
        return FIRST_AS_OF + pd.Timedelta(weeks=week)

    def week_of(self, day: str) -> int:
        return int((pd.Timestamp(day) - FIRST_AS_OF).days // 7)

    def core(self, week: int) -> tuple[np.ndarray, np.ndarray]:
        """(churn probability, light code 0 red / 1 yellow / 2 green / 3 unlit) of week."""
        if week not in self._cores:
            rng = np.random.default_rng([self.seed, week])
            p = np.round(rng.beta(1.2, 6.0, self.n), 6)
            order = np.argsort(-np.where(self.lapsed, -1.0, p), kind="stable")
            rank = np.empty(self.n, dtype=np.int64)
            rank[order] = np.arange(self.n)
            lit = self.n - int(self.lapsed.sum())
            light = np.where(rank < 0.1 * lit, 0, np.where(rank < 0.3 * lit, 1, 2))
            self._cores[week] = (p, np.where(self.lapsed, 3, light).astype(np.int8))
        return self._cores[week]

    def red_counts(self, week: int) -> dict[str, int]:
        """Red accounts per owner in week."""
        light = self.core(week)[1]
        counts = np.bincount(self.owner_of[light == 0], minlength=len(self.owner_names))
        return dict(zip(self.owner_names.tolist(), counts.tolist(), strict=True))

    def light_counts(self, week: int) -> dict[str, int]:
        light = self.core(week)[1]
        return {name: int((light == k).sum()) for k, name in enumerate(LIGHTS)}

    def frame(self, week: int) -> pd.DataFrame:
        """Week's scores as the scorer hands them to ``write_run`` (every stored column)."""
        p, code = self.core(week)
        prev_p, prev_code = self.core(week - 1) if week > 0 else (p * np.nan, code * 0 + 3)
        as_of = self.as_of(week)
        day = pd.Series([as_of] * self.n, dtype="datetime64[us]")
        names = np.array([*LIGHTS, ""], dtype=object)
        health = pd.Series(names[code]).replace("", "green")  # lapsed: green, unlit
        gap = (30 + (p * 300)).astype(int)
        reasons = [
            "No order for 45 days, 3x the usual gap (raises risk)",
            "Logins fell 50% over 90 days (raises risk)",
            "Renewal intent 8/10 (lowers risk)",
        ]
        return pd.DataFrame(
            {
                "account_id": pd.Series(self.ids, dtype="str"),
                "as_of": day,
                "churn_probability": p,
                "p_purchase_30d": np.round((1 - p) * 0.4, 6),
                "p_purchase_60d": np.round((1 - p) * 0.6, 6),
                "p_purchase_90d": np.round((1 - p) * 0.8, 6),
                "health": health,
                "expected_next_purchase_date": day + pd.to_timedelta(gap, unit="D"),
                "next_purchase_p10_date": day + pd.to_timedelta(gap // 3, unit="D"),
                "next_purchase_p90_date": day + pd.to_timedelta(gap * 2, unit="D"),
                "last_order_date": day - pd.to_timedelta(gap // 2, unit="D"),
                "abc_tier": self.tier,
                "revenue_at_risk": np.round(self.revenue * p, 2),
                "reason_1": reasons[0],
                "reason_2": reasons[1],
                "reason_3": reasons[2],
                "reason_1_feature": "recency_ratio",
                "reason_2_feature": "usage_trend_90d",
                "reason_3_feature": "renewal_intent_last",
                "reason_1_shap": 0.8,
                "reason_2_shap": 0.4,
                "reason_3_shap": -0.3,
                "churn_model_version": "7",
                "timing_model_version": "5",
                "name": pd.Series([f"Account {i} GmbH" for i in range(self.n)], dtype="str"),
                "owner": self.owner_names[self.owner_of],
                "industry": np.array(["machinery", "chemicals", "retail", "logistics"])[
                    self.owner_of % 4
                ],
                "region": np.array(["DACH", "Nordics", "UK", "Benelux"])[self.owner_of % 4],
                "health_prev": pd.Series(names[prev_code]).replace("", None),
                "churn_probability_prev": prev_p,
                "light_reason": "among the riskiest 10% of the portfolio",
                "recommended_action": "Monthly deep review now: call the buyer this week.",
                "changes": "Risk up 4 points: fewer logins.",
                "revenue_365d": self.revenue,
                "revenue_share": self.revenue / self.revenue.sum(),
                "dependency_index": self.revenue / self.revenue.sum() * 0.5,
                "days_since_last_order": (gap // 2).astype(float),
                "lifecycle": np.where(self.lapsed, "lapsed", "active"),
                "lifecycle_reason": "ordered within its usual rhythm",
                "low_confidence": False,
                "churn_definition": "no_order",
                "dependency_alert": False,
                "expected_revenue_12m": np.round(self.revenue * (1 - p), 2),
                "win_back_value": np.where(self.lapsed, self.revenue * 0.3, 0.0),
                "scorecard_usage": "green",
                "scorecard_usage_detail": "usage steady",
                "scorecard_complaints": "green",
                "scorecard_complaints_detail": "no complaints in 90 days",
                "scorecard_renewal_intent": "yellow",
                "scorecard_renewal_intent_detail": "renewal intent 6/10",
                "scorecard_purchase_rhythm": "green",
                "scorecard_purchase_rhythm_detail": "0.8x the usual gap",
            }
        )


def write_weeks(
    path: str,
    accounts: int,
    owners: int,
    first: int,
    weeks: int,
    deadline: float | None = None,
    seed: int = SEED,
) -> dict[str, Any]:
    """Write weeks ``first``.. (at most ``weeks``; with ``deadline``, a wall-clock time,
    at least one and then until it passes) through ``write_run``: what each write took."""
    from ka_ml.scoring.score_history import write_run

    world = World(accounts, owners, seed)
    written: list[dict[str, Any]] = []
    for week in range(first, first + weeks):
        if deadline is not None and written and time.time() >= deadline:
            break
        frame = world.frame(week)
        t0 = time.perf_counter()
        rows = write_run(Path(path), frame)
        written.append(
            {
                "as_of": str(world.as_of(week).date()),
                "rows": rows,
                "seconds": time.perf_counter() - t0,
            }
        )
    return {"written": written}


# -- a small HTTP/1.1 client ----------------------------------------------------------------
class Connection:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/json\r\n\r\n".encode()
            )
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            length = None
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                if key.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                raise ConnectionError("a response without Content-Length")
            return status, await self.reader.readexactly(length)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader, self.writer = None, None


@dataclass
class Tally:
    """What one phase saw, per endpoint kind."""

    latencies: dict[str, list[float]]
    errors: dict[str, int]
    inconsistent: dict[str, int]
    weeks: dict[str, int]  # as-of dates seen in responses
    examples: list[str]

    @classmethod
    def empty(cls) -> Tally:
        kinds = [k for k, _ in MIX]
        return cls({k: [] for k in kinds}, dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0), {}, [])

    def fail(self, kind: str, why: str, *, inconsistent: bool = False) -> None:
        (self.inconsistent if inconsistent else self.errors)[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {why}")


class Checker:
    """Is a response exactly what the generator wrote for the week it names?"""

    def __init__(self, world: World, weeks: int) -> None:
        self.world = world
        self.cores = {w: world.core(w) for w in range(weeks)}
        self.reds = {w: world.red_counts(w) for w in range(weeks)}
        self.lights = {w: world.light_counts(w) for w in range(weeks)}
        self.index = {a: i for i, a in enumerate(world.ids.tolist())}

    def week(self, day: str) -> int:
        week = self.world.week_of(day)
        if week not in self.cores:
            raise ValueError(f"as_of {day} was never written")
        return week

    def account(self, body: dict[str, Any]) -> str | None:
        week = self.week(body["as_of"])
        i = self.index[body["account_id"]]
        p, code = self.cores[week]
        if body["churn_probability"] != float(p[i]):
            return f"{body['account_id']} {body['as_of']}: p {body['churn_probability']} != {p[i]}"
        expected_light = LIGHTS[code[i]] if code[i] < 3 else "green"
        if body["health"] != expected_light:
            return f"{body['account_id']} {body['as_of']}: light {body['health']}"
        days = [h["as_of"] for h in body["history"]]
        want = [str(self.world.as_of(w).date()) for w in range(max(0, week - 103), week + 1)]
        if days != want:
            return f"{body['account_id']} {body['as_of']}: history weeks {days[-3:]} (a mix)"
        return None

    def listing(self, body: dict[str, Any], owner: str) -> str | None:
        week = self.week(body["as_of"])
        if body["total"] != self.reds[week][owner]:
            return f"{owner} {body['as_of']}: {body['total']} red != {self.reds[week][owner]}"
        bad = [i for i in body["items"] if i["health"] != "red" or i["owner"] != owner]
        if bad or any(i["as_of"] != body["as_of"] for i in body["items"]):
            return f"{owner} {body['as_of']}: items of another light, owner or week"
        return None

    def portfolio(self, body: dict[str, Any]) -> str | None:
        week = self.week(body["as_of"])
        s = body["summary"]
        if s["n_accounts"] != self.world.n:
            return f"{body['as_of']}: {s['n_accounts']} accounts of {self.world.n}"
        got = {k: v["accounts"] for k, v in s["lights"].items() if k in LIGHTS}
        if got != self.lights[week]:
            return f"{body['as_of']}: lights {got} != {self.lights[week]}"
        return None


async def _client(
    conn: Connection, deadline: float, rng: random.Random, checker: Checker, tally: Tally
) -> None:
    world = checker.world
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        owner = str(world.owner_names[rng.randrange(len(world.owner_names))])
        if kind == "account":
            path = f"/accounts/{world.ids[rng.randrange(world.n)]}"
        elif kind == "list":
            path = f"/accounts?light=red&owner={owner}"
        else:
            path = "/portfolio"
        t0 = time.perf_counter()
        try:
            status, raw = await conn.get(path)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            tally.fail(kind, f"{path}: {type(e).__name__}: {e}")
            await asyncio.sleep(0.01)
            continue
        tally.latencies[kind].append(time.perf_counter() - t0)
        if status != 200:
            tally.fail(kind, f"{path}: HTTP {status} {raw[:200]!r}")
            continue
        body = json.loads(raw)
        tally.weeks[body["as_of"]] = tally.weeks.get(body["as_of"], 0) + 1
        try:
            if kind == "account":
                why = checker.account(body)
            elif kind == "list":
                why = checker.listing(body, owner)
            else:
                why = checker.portfolio(body)
        except (KeyError, ValueError) as e:
            why = f"{type(e).__name__}: {e}"
        if why is not None:
            tally.fail(kind, why, inconsistent=True)


async def _phase(host: str, port: int, clients: int, seconds: float, checker: Checker) -> Tally:
    tally = Tally.empty()
    conns = [Connection(host, port) for _ in range(clients)]
    deadline = time.perf_counter() + seconds
    try:
        await asyncio.gather(
            *(
                _client(c, deadline, random.Random(SEED * 1000 + i), checker, tally)
                for i, c in enumerate(conns)
            )
        )
    finally:
        for c in conns:
            c.close()
    return tally


# -- the server and the writer --------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(
    root: Path, env: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], int]:
    """``ka-ml serve`` over ``root/outputs/score_history.sqlite`` on a free loopback port."""
    import urllib.request

    config = root / "ka_ml.yaml"
    config.write_text(f"paths:\n  outputs: {root / 'outputs'}\n  models: {root / 'models'}\n")
    port = _free_port()
    args = ["serve", "--config", str(config), "--port", str(port), "--workers", str(workers)]
    log = (root / f"serve-{port}.log").open("wb")  # a file: the server's children inherit it
    server = subprocess.Popen(
        [sys.executable, "-m", "ka_ml", *args],
        env={k: v for k, v in env.items() if k != "KA_ML_API_TOKEN"},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            err = (root / f"serve-{port}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ka-ml serve did not start:\n{err}")
        time.sleep(0.2)


# The writer imports, says READY, and starts writing when told how long to go on: its
# first write then falls inside the measured window (imports take seconds).
WRITER = (
    "import json, sys, time\n"
    "from ka_ml.bench.api_load import write_weeks\n"
    "import ka_ml.scoring.score_history\n"
    "print('READY', flush=True)\n"
    "kwargs = json.loads(sys.argv[1])\n"
    "seconds = float(sys.stdin.readline())  # blocks until the phase starts\n"
    "kwargs['deadline'] = time.time() + seconds\n"
    "print(sys.argv[2] + json.dumps(write_weeks(**kwargs)), flush=True)\n"
)


def _warm_up(port: int, workers: int) -> None:
    """What a server does once after it starts, outside the measured window: the first
    /portfolio starts the summaries' worker process and computes the latest week."""
    import urllib.request

    for _ in range(4 * workers):  # the requests reach every worker process
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/portfolio", timeout=120) as r:
            r.read()


def _spawn_writer(
    path: Path, plan: LoadPlan, first: int, env: dict[str, str]
) -> subprocess.Popen[str]:
    """The writer process, ready (imported) to write weeks ``first``.. when told."""
    kwargs = {
        "path": str(path),
        "accounts": plan.accounts,
        "owners": plan.owners,
        "first": first,
        "weeks": plan.max_new_weeks,
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, json.dumps(kwargs), MARK],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    if writer.stdout.readline().strip() != "READY":
        writer.kill()
        raise RuntimeError(f"the writer did not start:\n{writer.communicate()[1][-3000:]}")
    return writer


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the workers of a
    multi-process server), from Linux /proc; NaN elsewhere."""
    from ka_ml.bench.spark import _tree_cpu_s

    try:
        return _tree_cpu_s(pid)
    except OSError:
        return float("nan")


def _summary(tally: Tally, seconds: float) -> dict[str, Any]:
    by_kind = {}
    for kind, lat in tally.latencies.items():
        ms = np.asarray(lat) * 1000
        by_kind[kind] = {
            "requests": len(lat),
            "rps": len(lat) / seconds,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p95_ms": float(np.percentile(ms, 95)) if len(ms) else float("nan"),
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "max_ms": float(ms.max()) if len(ms) else float("nan"),
            "errors": tally.errors[kind],
            "inconsistent": tally.inconsistent[kind],
        }
    every = np.asarray([x for lat in tally.latencies.values() for x in lat]) * 1000
    return {
        "seconds": seconds,
        "requests": len(every),
        "rps": len(every) / seconds,
        "p50_ms": float(np.percentile(every, 50)) if len(every) else float("nan"),
        "p99_ms": float(np.percentile(every, 99)) if len(every) else float("nan"),
        "errors": sum(tally.errors.values()),
        "inconsistent": sum(tally.inconsistent.values()),
        "by_endpoint": by_kind,
        "weeks_seen": dict(sorted(tally.weeks.items())),
        "examples": tally.examples,
    }


def _load1() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _run_phase(
    name: str,
    workers: int,
    port: int,
    server: subprocess.Popen[bytes],
    plan: LoadPlan,
    checker: Checker,
    writer: subprocess.Popen[str] | None,
) -> dict[str, Any]:
    """One timed phase (the writer, when given, is told to start with it)."""
    if writer is not None:
        assert writer.stdin is not None
        writer.stdin.write(f"{plan.seconds}\n")
        writer.stdin.flush()
    cpu0, client0, load0 = _cpu_s(server.pid), time.process_time(), _load1()
    t0 = time.perf_counter()
    tally = asyncio.run(_phase("127.0.0.1", port, plan.clients, plan.seconds, checker))
    elapsed = time.perf_counter() - t0
    phase = {"name": name, "workers": workers, "load1": load0, **_summary(tally, elapsed)}
    phase["server_cpu_pct"] = 100 * (_cpu_s(server.pid) - cpu0) / elapsed
    phase["client_cpu_pct"] = 100 * (time.process_time() - client0) / elapsed
    if writer is not None:
        out, err = writer.communicate(timeout=600)
        if writer.returncode != 0:
            raise RuntimeError(f"the writer failed:\n{err[-3000:]}")
        line = [x for x in out.splitlines() if x.startswith(MARK)][-1]
        phase["writer"] = json.loads(line[len(MARK) :])["written"]
    return phase


def _stop(process: subprocess.Popen[Any]) -> None:
    """Terminate, and kill after 30 s; never wait on pipes a child may still hold."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def run(
    plan: LoadPlan = FULL,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Write the history; per server size (``plan.workers``) serve it and load it twice:
    readers alone, then with a writer storing the next weeks."""
    from ka_ml.scoring.score_history import FILE_NAME

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"} if env is None else env
    world = World(plan.accounts, plan.owners)
    result: dict[str, Any] = {"plan": asdict(plan), "mix": dict(MIX)}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        path = root / "outputs" / FILE_NAME
        log(f"writing {plan.weeks} weeks x {plan.accounts:,} accounts through write_run ...")
        t0 = time.perf_counter()
        built = write_weeks(str(path), plan.accounts, plan.owners, 0, plan.weeks)
        result["history"] = {
            "build_s": time.perf_counter() - t0,
            "rows": sum(w["rows"] for w in built["written"]),
            "write_s": [w["seconds"] for w in built["written"]],
            "file_mb": path.stat().st_size / 2**20,
        }
        checker = Checker(world, plan.weeks + plan.max_new_weeks * len(plan.workers))
        phases: list[dict[str, Any]] = []
        next_week = plan.weeks
        for workers in plan.workers:
            writer = _spawn_writer(path, plan, next_week, env)  # imports meanwhile
            server, port = _start_server(root, env, workers)
            try:
                _warm_up(port, workers)
                for name in ("readers only", "with a scoring run writing"):
                    log(
                        f"{workers} server process(es), {plan.clients} clients, "
                        f"{plan.seconds:g} s: {name} ..."
                    )
                    writing = writer if name != "readers only" else None
                    phases.append(_run_phase(name, workers, port, server, plan, checker, writing))
                next_week += len(phases[-1].get("writer", []))
            finally:
                _stop(server)
                if writer.poll() is None:
                    _stop(writer)
        result["phases"] = phases
    return result


# -- markdown -------------------------------------------------------------------------------
def _ms(x: float) -> str:
    return "n/a" if x != x else f"{x:,.1f}"


def _phase_label(ph: dict[str, Any]) -> str:
    procs = f"{ph['workers']} process{'es' if ph['workers'] > 1 else ''}"
    return f"{procs}, {ph['name']}"


def to_markdown(r: dict[str, Any]) -> str:
    plan = r["plan"]
    h = r["history"]
    rows = []
    for ph in r["phases"]:
        label = _phase_label(ph)
        for kind, _ in MIX:
            e = ph["by_endpoint"][kind]
            rows.append(
                f"| {label} | `{ENDPOINTS[kind]}` | {e['requests']:,} | {e['rps']:,.0f} | "
                f"{_ms(e['p50_ms'])} | {_ms(e['p95_ms'])} | {_ms(e['p99_ms'])} | "
                f"{_ms(e['max_ms'])} | {e['errors']} | {e['inconsistent']} |"
            )
        rows.append(
            f"| {label} | **all** | {ph['requests']:,} | **{ph['rps']:,.0f}** | "
            f"{_ms(ph['p50_ms'])} | | {_ms(ph['p99_ms'])} | | **{ph['errors']}** | "
            f"**{ph['inconsistent']}** |"
        )
    failed = sum(ph["errors"] + ph["inconsistent"] for ph in r["phases"])
    lines = [
        TITLE,
        "",
        f"`ka-ml serve` over a synthetic score history of {plan['accounts']:,} accounts x "
        f"{plan['weeks']} weeks ({h['rows']:,} rows, {h['file_mb']:,.0f} MB, written through "
        f"`write_run` in {h['build_s']:.0f} s); {plan['clients']} concurrent keep-alive "
        f"clients (asyncio, loopback, no think time: each sends its next request when the "
        f"last one is answered) for {plan['seconds']:g} s per phase; mix "
        + ", ".join(f"{100 * w:.0f}% `{ENDPOINTS[k]}`" for k, w in MIX)
        + f" ({plan['owners']} owners). Latency from request sent to last byte read, measured "
        "by the client on the same machine. Inconsistent = a response not exactly what was "
        "written for the week it names (a half-written week, or two weeks mixed). In the "
        "writing phases another process stores the next weeks with `write_run`, back to back. "
        "Each server answered one `/portfolio` per process before its first phase (the "
        "summaries' worker process starts then).",
        "",
        "| server, phase | endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | max ms "
        "| errors | inconsistent |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- Failed requests (errors + inconsistent), all phases: **{failed}** (goal 0).",
    ]
    for ph in r["phases"]:
        p99 = ph["by_endpoint"]["account"]["p99_ms"]
        verdict = "**met**" if p99 < P99_TARGET_MS else "**missed**"
        if plan["name"] == "quick":
            verdict += ", quick mode: too small to judge"
        line = (
            f"- {_phase_label(ph)}: p99 of `/accounts/{{id}}` {_ms(p99)} ms (goal < "
            f"{P99_TARGET_MS:g} ms: {verdict}); server CPU {ph['server_cpu_pct']:.0f}%, client "
            f"CPU {ph['client_cpu_pct']:.0f}% (100% = one core); load average at the start "
            f"{ph['load1']:.1f}"
        )
        if "writer" in ph:
            w = ph["writer"]
            secs = [x["seconds"] for x in w]
            seen = ph["weeks_seen"]
            line += (
                f"; the writer stored {len(w)} week{'s' if len(w) != 1 else ''} "
                f"({min(secs, default=float('nan')):.1f}-"
                f"{max(secs, default=float('nan')):.1f} s each) and readers saw {len(seen)} "
                f"different latest weeks, each response one whole week"
            )
        lines.append(line + ".")
    examples = [e for ph in r["phases"] for e in ph["examples"]]
    if examples:
        lines.append("- First failures: " + "; ".join(examples[:5]))
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 accounts, 10 clients, 1 s")
    ap.add_argument("--accounts", type=int)
    ap.add_argument("--clients", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--json", type=Path, help="also write the raw result here")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    over = {
        k: v
        for k, v in (
            ("accounts", args.accounts),
            ("clients", args.clients),
            ("seconds", args.seconds),
        )
        if v is not None
    }
    if over:
        from dataclasses import replace

        plan = replace(plan, **over)
    result = run(plan, log=lambda s: print(f"[api_load] {s}", file=sys.stderr, flush=True))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(to_markdown(result))
    return result


if __name__ == "__main__":
    main()
