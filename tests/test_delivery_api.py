"""The read API, started for real (uvicorn on 127.0.0.1) and called over HTTP.

The score history holds three weekly scores of the nine ``delivery_data`` accounts; the
schema is fuzzed with schemathesis (no 5xx, responses match the schema).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import schemathesis
import uvicorn
import yaml
from delivery_data import AS_OF, scores_frame
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config
from ka_ml.delivery.api import check_bind, create_app, serve
from ka_ml.errors import KaMlError
from ka_ml.scoring import score_history

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# seconds a request may take: these tests check answers, not speed. A first /portfolio
# request starts the summaries' worker process, and on a busy 2-core machine (CI beside a
# CDNOW training) it took over 10 s, which failed the run with a ReadTimeout
ANSWER_SECONDS = 120.0
DATES = [AS_OF - pd.Timedelta(days=14), AS_OF - pd.Timedelta(days=7), AS_OF]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def start(history: Path, token: str | None, **options: Any) -> Running:
    port = free_port()
    config = uvicorn.Config(
        create_app(history, token=token, **options),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{port}", server, thread)


def stop(running: Running) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=10)


def write_history(path: Path) -> Path:
    for day in DATES:
        frame = scores_frame(day)
        if day != AS_OF:  # earlier weeks: other probabilities and model versions
            frame["churn_probability"] = frame["churn_probability"] / 2
            frame["churn_model_version"] = "2"
        score_history.write_run(path, frame)
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_history(tmp_path_factory.mktemp("api") / "score_history.sqlite")


@pytest.fixture(scope="module")
def api(history: Path) -> Iterator[str]:
    running = start(history, TOKEN)
    yield running.url
    stop(running)


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, headers=AUTH, timeout=ANSWER_SECONDS) as c:
        yield c


# -- endpoints -------------------------------------------------------------------------


def test_healthz_answers_without_a_token_and_names_the_latest_date(api: str) -> None:
    r = httpx.get(f"{api}/healthz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",  # this server was started without a staleness limit
        "version": r.json()["version"],
        "scores": True,
        "latest_as_of": "2026-06-01",
        "scores_age_days": (date.today() - date(2026, 6, 1)).days,
    }


def test_healthz_says_stale_once_the_latest_scores_are_older_than_the_limit(
    history: Path,
) -> None:
    """A weekly job that stopped: the server is up (200) but a monitor sees 'stale'."""
    age = (date.today() - date(2026, 6, 1)).days
    for limit, status in ((age, "ok"), (age - 1, "stale")):
        running = start(history, None, stale_after_days=limit)
        try:
            r = httpx.get(f"{running.url}/healthz")
        finally:
            stop(running)
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["scores_age_days"]) == (status, age)


@pytest.mark.parametrize("path", ["/portfolio", "/accounts", "/accounts/A1", "/models"])
@pytest.mark.parametrize("header", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}])
def test_data_endpoints_need_the_bearer_token(api: str, path: str, header: dict) -> None:
    r = httpx.get(f"{api}{path}", headers=header)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"detail": "Missing or wrong bearer token."}


def test_portfolio_sums_the_latest_scores_overall_and_per_owner(client: httpx.Client) -> None:
    body = client.get("/portfolio").json()
    assert body["as_of"] == "2026-06-01" and body["owner"] is None
    summary = body["summary"]
    assert summary["n_accounts"] == 9
    assert {k: v["accounts"] for k, v in summary["lights"].items()} == {
        "red": 3,
        "yellow": 2,
        "green": 4,
    }
    assert summary["turned_red"] == 2  # A1 (from yellow) and B2 (new)
    alice = client.get("/portfolio", params={"owner": "alice.meyer"}).json()["summary"]
    assert alice["n_accounts"] == 4 and alice["lights"]["red"]["accounts"] == 2
    earlier = client.get("/portfolio", params={"as_of": "2026-05-25"}).json()
    assert earlier["as_of"] == "2026-05-25" and earlier["summary"]["n_accounts"] == 9


def test_a_portfolio_of_an_unknown_owner_is_a_404_naming_the_owners(
    client: httpx.Client,
) -> None:
    """Seen: /portfolio?owner=typo answered 200 with a portfolio of zeros."""
    res = client.get("/portfolio", params={"owner": "alice.meyr"})
    assert res.status_code == 404
    detail = res.json()["detail"]
    assert "No account of owner 'alice.meyr' as of 2026-06-01" in detail
    assert "alice.meyer, bruno.rossi" in detail


def test_a_cached_portfolio_follows_a_rerun_of_its_week(tmp_path: Path) -> None:
    """The summary is kept per (date, run, owner): a rerun of the week is a new run, so
    the next request sees the new scores, never the cached ones."""
    path = write_history(tmp_path / "score_history.sqlite")
    running = start(path, None)
    try:
        with httpx.Client(base_url=running.url, timeout=ANSWER_SECONDS) as c:
            first = c.get("/portfolio").json()
            assert c.get("/portfolio").json() == first  # served from the cache
            rerun = scores_frame(AS_OF)
            rerun["health"] = "red"
            score_history.write_run(path, rerun)
            after = c.get("/portfolio").json()["summary"]
            by_owner = c.get("/portfolio", params={"owner": "bruno.rossi"}).json()["summary"]
    finally:
        stop(running)
    assert first["summary"]["lights"]["red"]["accounts"] == 3
    assert after["lights"]["red"]["accounts"] == 9 and after["n_accounts"] == 9
    assert by_owner["lights"]["red"]["accounts"] == 3


def test_accounts_say_last_weeks_lifecycle_so_a_crm_can_tell_back_from_lapsed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "score_history.sqlite"
    frame = scores_frame(AS_OF)
    frame["lifecycle"] = "active"
    frame["lifecycle_prev"] = pd.Series(["lapsed", None] + ["active"] * 7, dtype=object)
    score_history.write_run(path, frame)
    running = start(path, None)
    try:
        with httpx.Client(base_url=running.url, timeout=ANSWER_SECONDS) as c:
            items = {a["account_id"]: a for a in c.get("/accounts").json()["items"]}
            detail = c.get("/accounts/A1").json()
    finally:
        stop(running)
    assert items["A1"]["lifecycle_prev"] == "lapsed" and items["A2"]["lifecycle_prev"] is None
    assert items["A3"]["lifecycle_prev"] == "active" and detail["lifecycle_prev"] == "lapsed"


def test_requests_for_a_missing_summary_share_one_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summaries are computed once per (date, run, owner), in the worker (here a thread
    pool standing in for the process), and not kept under a run id a rerun replaced."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ka_ml.delivery import api

    calls: list[tuple[str, str | None]] = []
    seen_run = {"value": "run-1"}

    def fake(path: str, day: str, owner: str | None) -> tuple[str, dict[str, Any]]:
        calls.append((day, owner))
        time.sleep(0.2)
        return seen_run["value"], {"n_accounts": len(calls)}

    monkeypatch.setattr(api, "compute_portfolio", fake)
    summaries = api.Summaries(tmp_path / "score_history.sqlite")
    pool = ThreadPoolExecutor(1)
    monkeypatch.setattr(summaries, "_worker", lambda: pool)

    async def scenario() -> list[Any]:
        first = await asyncio.gather(
            *(summaries.get("2026-06-01", "run-1", None) for _ in range(8))
        )
        again = await summaries.get("2026-06-01", "run-1", None)  # cached
        seen_run["value"] = "run-2"  # a rerun landed while the next one was computed
        late = await summaries.get("2026-06-01", "run-1", "alice")
        late_again = await summaries.get("2026-06-01", "run-1", "alice")
        return [first, again, late, late_again]

    first, again, late, late_again = asyncio.run(scenario())
    pool.shutdown()
    assert first == [{"n_accounts": 1}] * 8 and again == {"n_accounts": 1}
    assert late == {"n_accounts": 2} and late_again == {"n_accounts": 3}  # not kept
    assert calls == [("2026-06-01", None), ("2026-06-01", "alice"), ("2026-06-01", "alice")]


def test_a_portfolio_worker_that_cannot_start_still_gets_an_answer(
    history: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from ka_ml.delivery import api

    summaries = api.Summaries(history)

    def no_worker() -> None:
        raise RuntimeError("An attempt has been made to start a new process before ...")

    monkeypatch.setattr(summaries, "_worker", no_worker)
    with score_history.ReadOnlyHistory(history).open() as q:
        run = q.run_id("2026-06-01")
    summary = asyncio.run(summaries.get("2026-06-01", run, "alice.meyer"))
    assert summary["n_accounts"] == 4
    assert "computing in a thread" in caplog.text


def test_accounts_are_listed_by_revenue_at_risk_and_filtered(client: httpx.Client) -> None:
    page = client.get("/accounts").json()
    assert (page["as_of"], page["total"], page["limit"], page["offset"]) == ("2026-06-01", 9, 50, 0)
    risk = [a["revenue_at_risk"] for a in page["items"]]
    assert risk == sorted(risk, reverse=True)
    first = page["items"][0]
    assert first["top_reason"].startswith("No order for")
    assert first["recommended_action"] == "Call the buyer this week."

    def ids(**params: str) -> set[str]:
        return {a["account_id"] for a in client.get("/accounts", params=params).json()["items"]}

    assert ids(light="red") == {"A1", "A2", "B2"}
    assert ids(tier="A") == {"A1", "A4", "B3"}
    assert ids(owner="alice.meyer") == {"A1", "A2", "A3", "A4"}
    assert ids(owner="alice.meyer", light="green") == {"A3", "A4"}
    assert ids(owner="nobody") == set()


def test_pages_cover_every_account_once(client: httpx.Client) -> None:
    seen = []
    for offset in range(0, 10, 4):
        page = client.get("/accounts", params={"limit": 4, "offset": offset}).json()
        assert page["total"] == 9
        seen += [a["account_id"] for a in page["items"]]
    all_ids = [a["account_id"] for a in client.get("/accounts").json()["items"]]
    assert seen == all_ids and len(set(seen)) == 9


def test_one_account_comes_with_its_reasons_windows_and_history(client: httpx.Client) -> None:
    body = client.get("/accounts/A1").json()
    assert (body["account_id"], body["as_of"], body["owner"]) == ("A1", "2026-06-01", "alice.meyer")
    assert body["churn_probability"] == pytest.approx(0.62)
    assert [r["rank"] for r in body["reasons"]] == [1, 2, 3]
    assert body["reasons"][0] == {
        "rank": 1,
        "text": "No order for 40 days (raises risk)",
        "feature": "recency_days",
        "shap": 0.8,
    }
    assert set(body["purchase_probabilities"]) == {"30d", "60d", "90d"}
    assert body["purchase_probabilities"]["90d"] == pytest.approx(0.28)
    assert body["next_purchase_p90_date"] == "2026-07-31"
    history = body["history"]
    assert [h["as_of"] for h in history] == ["2026-05-18", "2026-05-25", "2026-06-01"]
    assert [h["churn_probability"] for h in history] == pytest.approx([0.31, 0.31, 0.62])
    short = client.get("/accounts/A1", params={"history": 1}).json()["history"]
    assert [h["as_of"] for h in short] == ["2026-06-01"]


def test_models_lists_the_versions_in_use_and_before(client: httpx.Client) -> None:
    body = client.get("/models").json()
    assert body["latest_as_of"] == "2026-06-01"
    assert body["in_use"] == [
        {
            "as_of": "2026-06-01",
            "churn_model_version": "3",
            "timing_model_version": "2",
            "accounts": 9,
        }
    ]
    assert [(m["as_of"], m["churn_model_version"]) for m in body["history"]] == [
        ("2026-06-01", "3"),
        ("2026-05-25", "2"),
        ("2026-05-18", "2"),
    ]


@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/accounts", {"light": "purple"}, "light"),
        ("/accounts", {"tier": "D"}, "tier"),
        ("/accounts", {"limit": 0}, "limit"),
        ("/accounts", {"limit": 501}, "limit"),
        ("/accounts", {"offset": -1}, "offset"),
        ("/accounts", {"as_of": "yesterday"}, "as_of"),
        ("/portfolio", {"owner": "x" * 201}, "owner"),
        ("/accounts/A1", {"history": 0}, "history"),
        ("/accounts", {"lihgt": "red"}, "lihgt"),
        ("/healthz", {"verbose": "1"}, "verbose"),
    ],
)
def test_bad_parameters_get_a_422_naming_the_parameter(
    client: httpx.Client, path: str, params: dict, where: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert [e["loc"][-1] for e in r.json()["detail"]] == [where]


def test_unknown_accounts_and_dates_get_a_404_that_says_what_to_do(client: httpx.Client) -> None:
    r = client.get("/accounts/NOPE")
    assert r.status_code == 404
    assert (
        r.json()["detail"] == "Account 'NOPE' has no scores. GET /accounts lists the scored ones."
    )
    r = client.get("/accounts", params={"as_of": "2020-01-06"})
    assert r.status_code == 404 and "No scores as of 2020-01-06" in r.json()["detail"]


def test_the_openapi_schema_documents_paths_errors_and_bearer_auth(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/healthz",
        "/portfolio",
        "/accounts",
        "/accounts/{account_id}",
        "/models",
    }
    accounts = schema["paths"]["/accounts"]["get"]
    assert {"200", "401", "404", "422"} <= set(accounts["responses"])
    assert accounts["security"] == [{"HTTPBearer": []}]
    light = next(p for p in accounts["parameters"] if p["name"] == "light")
    assert light["schema"]["anyOf"][0]["enum"] == ["red", "yellow", "green"]


def test_the_docs_page_works_offline(client: httpx.Client) -> None:
    """Read by an IT engineer on an intranet: /docs was blank (Swagger UI loads its scripts
    from a CDN)."""
    res = client.get("/docs")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    page = res.text
    assert "<script" not in page and "http" not in page.replace("openapi.json", "")
    for path in ("/portfolio", "/accounts", "/accounts/{account_id}", "/models", "/healthz"):
        assert f"GET {path}</code>" in page
    assert "<code>light</code>" in page and "openapi.json" in page
    assert client.get("/redoc").status_code == 404


def test_without_scores_yet_the_api_says_to_run_score_first(tmp_path: Path) -> None:
    running = start(tmp_path / "missing.sqlite", None)
    try:
        assert httpx.get(f"{running.url}/healthz").json()["scores"] is False
        for path in ("/portfolio", "/accounts", "/accounts/A1", "/models"):
            r = httpx.get(f"{running.url}{path}")
            assert r.status_code == 404 and "run `ka-ml score` first" in r.json()["detail"]
    finally:
        stop(running)
    assert not (tmp_path / "missing.sqlite").exists()  # read-only: nothing created


def test_a_history_file_from_before_the_detail_columns_is_served_and_migrated(
    tmp_path: Path,
) -> None:
    old = tmp_path / "score_history.sqlite"
    with sqlite3.connect(old) as con:
        con.execute(
            "CREATE TABLE scores (account_id TEXT NOT NULL, as_of TEXT NOT NULL, "
            "churn_probability REAL, health TEXT, expected_next_purchase_date TEXT, "
            "next_purchase_p10_date TEXT, next_purchase_p90_date TEXT, last_order_date TEXT, "
            "abc_tier TEXT, revenue_at_risk REAL, reason_1 TEXT, churn_model_version TEXT, "
            "timing_model_version TEXT, extra_probability_columns TEXT, "
            "PRIMARY KEY (account_id, as_of))"
        )
        con.execute(
            "INSERT INTO scores (account_id, as_of, churn_probability, health, reason_1) "
            "VALUES ('X1', '2026-05-25', 0.7, 'red', 'No order for 90 days')"
        )
    con.close()
    running = start(old, None)
    try:
        body = httpx.get(f"{running.url}/accounts/X1").json()
        assert body["name"] is None and body["owner"] is None
        assert body["reasons"] == [
            {"rank": 1, "text": "No order for 90 days", "feature": None, "shap": None}
        ]
        assert httpx.get(f"{running.url}/accounts", params={"owner": "a"}).json()["total"] == 0
    finally:
        stop(running)
    score_history.write_run(old, scores_frame())  # the scorer's next run widens the table
    with sqlite3.connect(old) as con:
        cols = {row[1] for row in con.execute("PRAGMA table_info(scores)")}
        kept = con.execute("SELECT health FROM scores WHERE account_id = 'X1'").fetchall()
    con.close()
    assert set(score_history.DETAIL_COLUMNS) <= cols and kept == [("red",)]


# -- serving safely ----------------------------------------------------------------------


def test_the_api_reads_the_history_file_the_scorer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    cfg = Config.model_validate({"paths": {"outputs": str(tmp_path)}})
    serve(cfg, "127.0.0.1", 8000, {})
    assert served[0].state.history.path == score_history.history_path(cfg).resolve()
    assert score_history.history_path(cfg) == tmp_path / "score_history.sqlite"


def test_serving_beyond_loopback_needs_a_long_enough_token() -> None:
    check_bind("127.0.0.1", None, "KA_ML_API_TOKEN")
    check_bind("localhost", None, "KA_ML_API_TOKEN")
    check_bind("0.0.0.0", TOKEN, "KA_ML_API_TOKEN")
    with pytest.raises(KaMlError, match="without a token") as err:
        check_bind("0.0.0.0", None, "KA_ML_API_TOKEN")
    assert "export KA_ML_API_TOKEN" in err.value.remedy
    with pytest.raises(KaMlError, match="too short"):
        check_bind("127.0.0.1", "short", "KA_ML_API_TOKEN")


def test_the_cli_refuses_to_expose_the_api_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KA_ML_API_TOKEN", raising=False)
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert res.exit_code == 2 and "without a token" in res.output


def serve_config(history: Path, tmp_path: Path) -> Path:
    """A config file whose outputs folder holds ``history`` (what `ka-ml serve` reads)."""
    raw = Config().model_dump(mode="json")
    raw["paths"]["outputs"] = str(history.parent)
    config = tmp_path / "ka_ml.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return config


@pytest.mark.parametrize("workers", [1, 2])
def test_ka_ml_serve_answers_over_http_with_the_token_from_the_environment(
    history: Path, tmp_path: Path, workers: int
) -> None:
    config = serve_config(history, tmp_path)
    port = free_port()
    env = {**os.environ, "KA_ML_API_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "ka_ml", "serve", "--config", str(config), "--port", str(port)]
    cmd += ["--workers", str(workers)]  # 2: uvicorn's worker processes build the app
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert health.json()["latest_as_of"] == "2026-06-01"
        wait = ANSWER_SECONDS  # a worker's first answer imports the app: slow when busy
        assert httpx.get(f"{url}/accounts", timeout=wait).status_code == 401
        for _ in range(4):  # whichever worker answers
            page = httpx.get(
                f"{url}/accounts", headers=AUTH, params={"light": "red"}, timeout=wait
            ).json()
            assert page["total"] == 3
            summary = httpx.get(f"{url}/portfolio", headers=AUTH, timeout=wait).json()["summary"]
            assert summary["n_accounts"] == 9
        children = descendants(proc.pid)  # the summaries' worker process(es), uvicorn's
        assert children
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children):  # none outlives the server
        assert time.monotonic() < deadline, [p for p in children if Path(f"/proc/{p}").exists()]
        time.sleep(0.2)


def test_the_portfolio_worker_exits_when_the_server_is_killed(
    history: Path, tmp_path: Path
) -> None:
    import signal

    config = serve_config(history, tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "ka_ml", "serve", "--config", str(config), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert (
                    httpx.get(
                        f"http://127.0.0.1:{port}/portfolio", timeout=ANSWER_SECONDS
                    ).status_code
                    == 200
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        children = descendants(proc.pid)
        assert children
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown runs
        proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "the worker outlived its server"
        time.sleep(0.2)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parent_of = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        kids = [p for p, parent in parent_of.items() if parent == here]
        found += kids
        todo += kids
    return found


# -- fuzzing -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(api: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api}/openapi.json")


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/healthz", GenerationMode.POSITIVE),  # no parameter to get wrong
        *(
            (path, mode)
            for path in ("/portfolio", "/accounts", "/accounts/{account_id}", "/models")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ),
    ],
)
def test_fuzzed_requests_never_get_a_server_error(
    api_schema: schemathesis.BaseSchema, path: str, mode: GenerationMode
) -> None:
    """Valid and invalid requests: no 5xx, documented status codes, schema-true bodies."""

    @given(case=api_schema[path]["GET"].as_strategy(generation_mode=mode, headers=AUTH))
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate()

    fuzz()


def test_each_worker_process_takes_the_staleness_limit_from_the_environment(
    history: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ka-ml serve --workers 2`: uvicorn's worker processes build the app themselves."""
    from ka_ml.delivery import api as api_module

    monkeypatch.setenv(api_module.HISTORY_ENV, str(history))
    for value, limit in (("8", 8), ("", None)):
        monkeypatch.setenv(api_module.STALE_ENV, value)
        assert api_module.app_from_environment().state.stale_after_days == limit
