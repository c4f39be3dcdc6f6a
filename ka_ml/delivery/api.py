"""`ka-ml serve`: a small read-only HTTP API over the score history (FastAPI).

Endpoints: ``GET /portfolio`` (summary), ``GET /accounts`` (filters ``light``, ``tier``,
``owner``, ``as_of``; paginated), ``GET /accounts/{account_id}`` (latest score with its
reasons, and its history), ``GET /models`` (model versions in use), ``GET /healthz``.
The OpenAPI schema is at ``/openapi.json`` (interactive docs at ``/docs``).

Why it is built this way:

- The source is the scorer's own history (``outputs/score_history.sqlite``, which keeps
  every weekly score with its reasons), opened read-only per request: the API can never
  change it, and a score run landing meanwhile is simply seen by the next request.
- The queries belong to the history's owner (:mod:`ka_ml.scoring.score_history`,
  SQLAlchemy Core with bound parameters); this module holds the HTTP side: every input
  is typed and bounded by FastAPI (unknown light/tier, bad dates, out-of-range paging ->
  422 with the reason); unknown accounts and dates -> 404 with what to do.
- Routes are module-level functions on two routers (``meta``: no token; ``data``: the
  scores), the history and the token reach them through ``Depends`` and ``app.state``,
  and :func:`create_app` only wires them: the token check is added to the ``data``
  router when a token is set.
- Under load (issue 16.3): every request reads one snapshot of the history (the scorer
  writes a week in one transaction, the file is in WAL mode), so a response is last
  week's whole history or this week's, never a mix, and readers never wait for a
  scoring run. The portfolio summary, the one response computed over every account, is
  kept per (date, the run that stored it, owner): a week rewritten by a rerun has a new
  run id, so it is never served stale; a missing one is computed in a worker process
  (:class:`Summaries`), once for all the requests waiting for it.
- The data routes (``/accounts/{id}``, ``/accounts``, ``/portfolio``) are ``async`` and
  query SQLite on the event loop: their queries are index lookups of well under a
  millisecond, and handing each request to a thread and back cost more than the query
  (measured at 100k accounts, 50 clients: 360-380 requests/s on the loop, 200-225 in
  threads, p99 about 200 ms against 300-370). ``/models`` and ``/healthz`` stay in a
  small thread pool (:data:`THREADS`).
- Bound to 127.0.0.1 by default. A bearer token (from the environment variable
  ``delivery.api_token_env``) protects every data endpoint when set, and ``serve`` refuses
  to listen on a non-loopback address without one.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at runtime.
"""

import asyncio
import json
import logging
import math
import multiprocessing
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from functools import partial
from html import escape
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ka_ml import __version__
from ka_ml.config import Config
from ka_ml.delivery.mail import is_loopback
from ka_ml.errors import KaMlError
from ka_ml.reporting.summary import portfolio_summary
from ka_ml.scoring.score_history import HistoryQueries, NoScores, ReadOnlyHistory, history_path

log = logging.getLogger("ka_ml.api")

Light = Literal["red", "yellow", "green"]
Tier = Literal["A", "B", "C"]
Lifecycle = Literal["new", "active", "lapsed"]
MAX_PAGE = 500
N_REASONS = 3
THREADS = 4  # requests served at once (see _lifespan)


# --------------------------------------------------------------------------- responses


class Problem(BaseModel):
    detail: str


class Reason(BaseModel):
    rank: int
    text: str
    feature: str | None = None
    shap: float | None = Field(None, description="contribution to the churn log-odds")


class AccountSummary(BaseModel):
    account_id: str
    as_of: date
    name: str | None = None
    owner: str | None = None
    industry: str | None = None
    region: str | None = None
    abc_tier: str | None = None
    health: str | None = None
    health_prev: str | None = Field(None, description="last week's light")
    churn_probability: float | None = None
    churn_probability_prev: float | None = None
    revenue_365d: float | None = None
    revenue_at_risk: float | None = None
    expected_next_purchase_date: date | None = None
    next_purchase_p10_date: date | None = None
    next_purchase_p90_date: date | None = None
    light_reason: str | None = None
    recommended_action: str | None = None
    top_reason: str | None = None
    lifecycle: str | None = Field(None, description="new / active / lapsed")
    lifecycle_prev: str | None = Field(
        None, description="last week's lifecycle (empty: not scored last week)"
    )
    low_confidence: bool | None = None
    dependency_alert: bool | None = None
    scorecard_usage: str | None = None
    scorecard_complaints: str | None = None
    scorecard_renewal_intent: str | None = None
    scorecard_purchase_rhythm: str | None = None


class HistoryPoint(BaseModel):
    as_of: date
    churn_probability: float | None = None
    health: str | None = None
    abc_tier: str | None = None
    revenue_at_risk: float | None = None
    expected_next_purchase_date: date | None = None
    churn_model_version: str | None = None
    timing_model_version: str | None = None


class AccountDetail(AccountSummary):
    reasons: list[Reason]
    purchase_probabilities: dict[str, float | None] = Field(
        default_factory=dict, description="P(next order within k days), by window"
    )
    changes: str | None = None
    lifecycle_reason: str | None = None
    churn_definition: str | None = None
    expected_revenue_12m: float | None = None
    win_back_value: float | None = None
    scorecard_usage_detail: str | None = None
    scorecard_complaints_detail: str | None = None
    scorecard_renewal_intent_detail: str | None = None
    scorecard_purchase_rhythm_detail: str | None = None
    revenue_share: float | None = None
    dependency_index: float | None = None
    days_since_last_order: float | None = None
    last_order_date: date | None = None
    churn_model_version: str | None = None
    timing_model_version: str | None = None
    history: list[HistoryPoint]


class AccountPage(BaseModel):
    as_of: date
    total: int
    limit: int
    offset: int
    items: list[AccountSummary]


class Portfolio(BaseModel):
    as_of: date
    owner: str | None = None
    summary: dict[str, Any]


class ModelUse(BaseModel):
    as_of: date
    churn_model_version: str | None = None
    timing_model_version: str | None = None
    accounts: int


class Models(BaseModel):
    latest_as_of: date
    in_use: list[ModelUse]
    history: list[ModelUse]


class Health(BaseModel):
    status: Literal["ok", "stale"] = Field(
        description="'stale': the latest scores are older than delivery.api_stale_after_days "
        "(the weekly job has stopped); the server itself is up either way (HTTP 200)"
    )
    version: str
    scores: bool
    latest_as_of: date | None = None
    scores_age_days: int | None = Field(
        None, description="days from the latest scores' as-of date to today (server's clock)"
    )


# --------------------------------------------------------------------------- row helpers


def _value(v: Any) -> Any:
    """NaN (from REAL columns) as None; everything else unchanged."""
    return None if isinstance(v, float) and math.isnan(v) else v


def _clean(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row with NaN as None. The values are SQLite's (str, int, float, bytes, None), of
    which only NaN differs from itself: the cheap test, on every cell of every response."""
    return {str(k): None if v != v else v for k, v in row.items()}


def _reasons(row: Mapping[str, Any]) -> list[Reason]:
    out = []
    for k in range(1, N_REASONS + 1):
        text = row.get(f"reason_{k}")
        if text:
            out.append(
                Reason(
                    rank=k,
                    text=str(text),
                    feature=row.get(f"reason_{k}_feature"),
                    shap=_value(row.get(f"reason_{k}_shap")),
                )
            )
    return out


def _probabilities(raw: Any) -> dict[str, float | None]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {
        str(k).removeprefix("p_purchase_"): (float(v) if isinstance(v, int | float) else None)
        for k, v in parsed.items()
    }


# --------------------------------------------------------------------------- the app


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the endpoint does not know (``?lihgt=red`` would otherwise
    silently return every account)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {p.alias for p in dependant.query_params} if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"Unknown query parameter; this endpoint takes {sorted(known)}",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such account, owner, date or no scores yet"}
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"}
}
NO_SCORES = "No scores yet: run `ka-ml score` first (the API reads the score history)."
BEARER = HTTPBearer(auto_error=False, description="the token in KA_ML_API_TOKEN")
# what each response reads from the history
PORTFOLIO_COLUMNS = (
    "account_id",
    "name",
    "health",
    "health_prev",
    "abc_tier",
    "churn_probability",
    "churn_probability_prev",
    "revenue_365d",
    "revenue_at_risk",
    "revenue_share",
    "dependency_index",
    "dependency_alert",
    "lifecycle",
    "expected_revenue_12m",
    "win_back_value",
)
SUMMARY_FIELDS = [*(f for f in AccountSummary.model_fields if f != "top_reason"), "top_reason"]
TOP_REASON = {"top_reason": "reason_1"}


async def authorize(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """401 unless the request carries the app's bearer token (added only when one is set)."""
    token: str = request.app.state.token
    given = creds.credentials if creds is not None else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "Missing or wrong bearer token.", headers={"WWW-Authenticate": "Bearer"}
        )


def compute_portfolio(path: str, day: str, owner: str | None) -> tuple[str | None, dict[str, Any]]:
    """(the run id read, the portfolio summary) of ``day`` (and ``owner``), from its own
    snapshot of the history at ``path``: what the summaries' worker process runs."""
    store = _WORKER_STORES.get(path)
    if store is None:
        store = _WORKER_STORES.setdefault(path, ReadOnlyHistory(Path(path), pool_size=1))
    with store.open() as q:
        frame = q.frame(day, PORTFOLIO_COLUMNS, account_filters(owner=owner))
        return q.run_id(day), portfolio_summary(frame)


_WORKER_STORES: dict[str, ReadOnlyHistory] = {}


class Summaries:
    """Portfolio summaries, kept per (date, run id, owner) and computed in a worker process.

    A summary reads every account of a week (about a second at 100k accounts). In the
    server process it would hold the GIL every request needs: on the event loop it stalls
    them all, and in a thread it crawls behind the busy loop (SQLite hands the GIL back
    on every row). So one worker process beside the server computes it from its own
    snapshot, and requests asking for the same missing summary share that computation.
    A week stored before runs were recorded (no run id) is computed every time.
    """

    def __init__(self, path: Path, size: int = 256) -> None:
        self.path = Path(path)
        self.size = size
        self._data: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[tuple[str | None, dict[str, Any]]]] = {}
        self._pool: ProcessPoolExecutor | None = None

    async def get(self, day: str, run: str | None, owner: str | None) -> dict[str, Any]:
        key = (day, run, owner)
        if run is not None and key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._compute(day, owner))
            self._pending[key] = pending
            pending.add_done_callback(partial(self._done, key))
        # shielded: a client hanging up does not cancel the others' computation
        return (await asyncio.shield(pending))[1]

    async def _compute(self, day: str, owner: str | None) -> tuple[str | None, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        args = (str(self.path), day, owner)
        try:
            return await loop.run_in_executor(self._worker(), compute_portfolio, *args)
        except (BrokenProcessPool, RuntimeError, OSError):
            # the worker could not start (a script without a __main__ guard creating the
            # app) or died: answer from a thread (slower under load), try a new one next
            log.warning("the portfolio worker process failed; computing in a thread", exc_info=True)
            self.close()
            return await loop.run_in_executor(None, compute_portfolio, *args)

    def _done(self, key: tuple[str, str | None, str | None], done: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        seen, summary = done.result()
        if key[1] is not None and seen == key[1]:  # else a rerun landed meanwhile
            self._data[key] = summary
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:  # started on first use: ~2 s of imports, once
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker (after the summary it may be computing: a second or two)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _exit_with_parent(parent: int) -> None:
    """In the worker: exit when the server that started it is gone (killed, not stopped)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


async def app_history(request: Request) -> ReadOnlyHistory:
    """The app's score history (read-only); each route opens it for its own request."""
    store: ReadOnlyHistory = request.app.state.history
    return store


Store = Annotated[ReadOnlyHistory, Depends(app_history)]


@contextmanager
def scores(store: ReadOnlyHistory) -> Iterator[HistoryQueries]:
    """The history's queries for one request; 404 with the remedy when nothing is scored."""
    try:
        with store.open() as found:
            yield found
    except NoScores:
        raise HTTPException(404, NO_SCORES) from None


def pick_date(q: HistoryQueries, as_of: date | None) -> str:
    """The scored date a request asks for (latest by default); 404 for an unscored date."""
    if as_of is None:
        latest = q.latest_as_of()
        if latest is None:
            raise HTTPException(404, NO_SCORES)
        return latest
    day = as_of.isoformat()
    if not q.has_as_of(day):
        raise HTTPException(404, f"No scores as of {day}. GET /models lists the scored dates.")
    return day


def account_filters(
    *,
    light: str | None = None,
    tier: str | None = None,
    lifecycle: str | None = None,
    dependency_alert: bool | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """The given filters as stored column -> required value (unset filters left out)."""
    wanted: dict[str, Any] = {
        "health": light,
        "abc_tier": tier,
        "lifecycle": lifecycle,
        "dependency_alert": None if dependency_alert is None else int(dependency_alert),
        "owner": owner,
    }
    return {col: value for col, value in wanted.items() if value is not None}


# --------------------------------------------------------------------------- routes

meta = APIRouter(tags=["meta"])
data = APIRouter(tags=["scores"])


@meta.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """The API's reference as one self-contained page (FastAPI's Swagger UI loads its
    scripts from a CDN: a blank page on an intranet without internet)."""
    return HTMLResponse(docs_page(request.app.openapi()))


def docs_page(schema: Mapping[str, Any]) -> str:
    """Every endpoint of an OpenAPI ``schema``: method, path, summary, parameters and
    responses, as plain HTML with no script or outside resource."""
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        escape(str(info.get("title", "API"))),
        "</title><style>body{font:14px system-ui,sans-serif;max-width:960px;margin:24px auto;"
        "padding:0 16px;color:#222}code{background:#f3f3f3;padding:1px 4px}table{border-"
        "collapse:collapse;margin:6px 0 18px}td,th{border:1px solid #ddd;padding:4px 8px;"
        "text-align:left;vertical-align:top}h2{margin-top:28px}</style></head><body>",
        f"<h1>{escape(str(info.get('title', 'API')))} {escape(str(info.get('version', '')))}</h1>",
        f"<p>{escape(str(info.get('description', '')))} Machine-readable schema: "
        "<a href='openapi.json'><code>/openapi.json</code></a>.</p>",
    ]
    for path, methods in sorted(schema.get("paths", {}).items()):
        for method, op in methods.items():
            parts.append(f"<h2><code>{escape(method.upper())} {escape(path)}</code></h2>")
            text = op.get("description") or op.get("summary") or ""
            parts.append(f"<p>{escape(str(text))}</p>")
            params = op.get("parameters") or []
            if params:
                parts.append(
                    "<table><tr><th>parameter</th><th>in</th><th>required</th><th>type</th>"
                    "<th>meaning</th></tr>"
                )
                for p in params:
                    kind = (p.get("schema") or {}).get("type") or next(
                        (a.get("type") for a in (p.get("schema") or {}).get("anyOf", [])), ""
                    )
                    parts.append(
                        f"<tr><td><code>{escape(str(p.get('name')))}</code></td>"
                        f"<td>{escape(str(p.get('in')))}</td>"
                        f"<td>{'yes' if p.get('required') else 'no'}</td>"
                        f"<td>{escape(str(kind))}</td>"
                        f"<td>{escape(str(p.get('description') or ''))}</td></tr>"
                    )
                parts.append("</table>")
            responses = ", ".join(
                f"{escape(str(code))} {escape(str(r.get('description', '')))}"
                for code, r in (op.get("responses") or {}).items()
            )
            parts.append(f"<p>Responses: {responses}</p>")
    parts.append("</body></html>")
    return "".join(parts)


@meta.get("/healthz", response_model=Health)
def healthz(store: Store, request: Request) -> Health:
    """Liveness, whether any scores exist yet, and how old the latest are: 'stale' once
    they are older than ``delivery.api_stale_after_days`` (no token needed)."""
    try:
        with store.open() as q:
            latest = q.latest_as_of()
    except NoScores:
        latest = None
    day = date.fromisoformat(latest) if latest else None
    age = (date.today() - day).days if day else None
    limit = request.app.state.stale_after_days
    return Health(
        status="stale" if age is not None and limit is not None and age > limit else "ok",
        version=__version__,
        scores=day is not None,
        latest_as_of=day,
        scores_age_days=age,
    )


async def app_summaries(request: Request) -> Summaries:
    summaries: Summaries = request.app.state.summaries
    return summaries


@data.get("/portfolio", response_model=Portfolio)
async def portfolio(
    store: Store,
    summaries: Annotated[Summaries, Depends(app_summaries)],
    owner: Annotated[str | None, Query(max_length=200)] = None,
    as_of: date | None = None,
) -> Portfolio:
    """Accounts, revenue and revenue at risk per light and ABC tier, plus alerts."""
    with scores(store) as q:
        day = pick_date(q, as_of)
        run = q.run_id(day)
        if owner is not None and not q.count(day, account_filters(owner=owner)):
            known = sorted({str(o) for o in q.frame(day, ["owner"], {})["owner"].dropna()})
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            raise HTTPException(
                404,
                f"No account of owner '{owner}' as of {day} (owners then: {shown or 'none'}). "
                "Owners are matched exactly, as the accounts table spells them.",
            )
    summary = await summaries.get(day, run, owner)
    return Portfolio(as_of=date.fromisoformat(day), owner=owner, summary=summary)


@data.get("/accounts", response_model=AccountPage)
async def accounts(
    store: Store,
    light: Light | None = None,
    tier: Tier | None = None,
    lifecycle: Lifecycle | None = None,
    dependency_alert: bool | None = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    as_of: date | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AccountPage:
    """The scored accounts of one date (latest by default), most revenue at risk first."""
    where = account_filters(
        light=light, tier=tier, lifecycle=lifecycle, dependency_alert=dependency_alert, owner=owner
    )
    with scores(store) as q:
        day = pick_date(q, as_of)
        total = q.count(day, where)
        rows = q.page(day, where, SUMMARY_FIELDS, renamed=TOP_REASON, limit=limit, offset=offset)
    return AccountPage(
        as_of=date.fromisoformat(day),
        total=total,
        limit=limit,
        offset=offset,
        items=[AccountSummary(**_clean(r)) for r in rows],
    )


@data.get("/accounts/{account_id}", response_model=AccountDetail)
async def account(
    store: Store,
    account_id: Annotated[str, PathParam(min_length=1, max_length=200)],
    history: Annotated[int, Query(ge=1, le=520)] = 104,
) -> AccountDetail:
    """The account's latest score with its reasons, and up to ``history`` past weeks."""
    with scores(store) as q:
        latest = q.latest_of(account_id)
        if latest is None:
            raise HTTPException(
                404, f"Account '{account_id}' has no scores. GET /accounts lists the scored ones."
            )
        past = q.history_of(account_id, list(HistoryPoint.model_fields), history)
    return account_detail(_clean(latest), past)


def account_detail(row: dict[str, Any], past: list[dict[str, Any]]) -> AccountDetail:
    """The latest row (NaN cleaned) and its past rows (newest first) as the response."""
    fields = {k: v for k, v in row.items() if k in AccountDetail.model_fields}
    return AccountDetail(
        **fields,
        top_reason=row.get("reason_1"),
        reasons=_reasons(row),
        purchase_probabilities=_probabilities(row.get("extra_probability_columns")),
        history=[HistoryPoint(**_clean(p)) for p in reversed(past)],
    )


@data.get("/models", response_model=Models)
def models(
    store: Store,
    limit: Annotated[int, Query(ge=1, le=520)] = 52,
) -> Models:
    """The model versions behind the latest scores, and per scored date before."""
    with scores(store) as q:
        rows = [ModelUse(**r) for r in q.model_use(limit)]
    if not rows:
        raise HTTPException(404, NO_SCORES)
    latest = rows[0].as_of
    return Models(latest_as_of=latest, in_use=[r for r in rows if r.as_of == latest], history=rows)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A few threads for the routes left in threads (``/models``, ``/healthz``) instead of
    anyio's 40; with ``warm``, the latest portfolio computed while the first requests come
    in; the summaries' worker process ends with the app."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    warming = asyncio.create_task(_warm(app)) if app.state.warm else None
    try:
        yield
    finally:
        if warming is not None:
            warming.cancel()
        app.state.summaries.close()


async def _warm(app: FastAPI) -> None:
    """Start the summaries' worker and compute the latest week's portfolio, so the first
    /portfolio after a start does not wait for both (~2 s + ~1 s at 100k accounts)."""
    try:
        with app.state.history.open() as q:
            day = q.latest_as_of()
            run = q.run_id(day) if day else None
        if day:
            await app.state.summaries.get(day, run, None)
    except NoScores:
        pass
    except Exception:  # a cold cache is no reason to stop serving
        log.warning("warming the portfolio summary failed", exc_info=True)


def create_app(
    history_path: Path,
    *,
    token: str | None = None,
    warm: bool = False,
    stale_after_days: int | None = None,
) -> FastAPI:
    """The API over ``history_path`` (the scorer's score_history.sqlite); with ``token``,
    every data endpoint needs it as a bearer token; ``warm`` (``ka-ml serve``): see
    :func:`_warm`; ``stale_after_days``: see :func:`healthz` (None: never stale)."""
    app = FastAPI(
        docs_url=None,  # /docs is served by `docs`, without a CDN
        redoc_url=None,
        lifespan=_lifespan,
        title="ka_ml read API",
        version=__version__,
        description="Latest key-account health scores, reasons and history (read-only).",
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.history = ReadOnlyHistory(history_path)
    app.state.summaries = Summaries(history_path)
    app.state.token = token
    app.state.warm = warm
    app.state.stale_after_days = stale_after_days
    app.include_router(meta)
    app.include_router(
        data,
        dependencies=[Depends(authorize)] if token else [],
        responses={**NOT_FOUND, **(UNAUTHORIZED if token else {})},
    )
    return app


# --------------------------------------------------------------------------- serving


def api_token(cfg: Config, env: Mapping[str, str]) -> str | None:
    """The bearer token from the environment (None when unset or empty)."""
    return env.get(cfg.delivery.api_token_env) or None


def check_bind(host: str, token: str | None, token_env: str) -> None:
    """Refuse to expose the API beyond this machine without a token."""

    if token is None and not is_loopback(host):
        raise KaMlError(
            f"Refusing to serve the API on {host} without a token.",
            f"export {token_env}=<a long random secret> (clients send it as "
            "'Authorization: Bearer <token>'), or bind to 127.0.0.1.",
        )
    if token is not None and len(token) < 16:
        raise KaMlError(
            f"The API token in {token_env} is too short ({len(token)} characters).",
            "use at least 16 random characters, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`.",
        )


# `ka-ml serve --workers N`: uvicorn starts N processes that import the app themselves;
# they find the history and the token's variable name here (the token stays in its own).
HISTORY_ENV = "KA_ML_API_HISTORY"
TOKEN_NAME_ENV = "KA_ML_API_TOKEN_ENV"
STALE_ENV = "KA_ML_API_STALE_AFTER_DAYS"


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn's factory for ``--workers`` above 1)."""
    token_env = os.environ.get(TOKEN_NAME_ENV, "KA_ML_API_TOKEN")
    token = os.environ.get(token_env) or None
    stale = os.environ.get(STALE_ENV) or None
    return create_app(
        Path(os.environ[HISTORY_ENV]),
        token=token,
        warm=True,
        stale_after_days=int(stale) if stale else None,
    )


def serve(cfg: Config, host: str, port: int, env: Mapping[str, str], *, workers: int = 1) -> None:
    """Run the API with uvicorn until interrupted: one process, or ``workers`` processes
    sharing the port (the API is CPU-bound Python: one process uses one core at most)."""
    import uvicorn

    token = api_token(cfg, env)
    check_bind(host, token, cfg.delivery.api_token_env)
    options: dict[str, Any] = {"host": host, "port": port, "server_header": False}
    stale = cfg.delivery.api_stale_after_days
    if workers <= 1:
        app = create_app(history_path(cfg), token=token, warm=True, stale_after_days=stale)
        uvicorn.run(app, log_level="info", **options)
        return
    os.environ[HISTORY_ENV] = str(history_path(cfg).resolve())
    os.environ[TOKEN_NAME_ENV] = cfg.delivery.api_token_env
    os.environ[STALE_ENV] = "" if stale is None else str(stale)
    uvicorn.run(
        "ka_ml.delivery.api:app_from_environment",
        factory=True,
        workers=workers,
        log_level="info",
        **options,
    )


__all__ = ["api_token", "app_from_environment", "check_bind", "create_app", "serve"]
