"""The read-API load bench (issue 16.3): its synthetic history, the consistency checks that
make "never a half-written week" a measured claim, and one short real run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ka_ml.bench import api_load
from ka_ml.bench.api_load import Checker, World
from ka_ml.scoring import score_history


@pytest.fixture(scope="module")
def world() -> World:
    return World(300, 7)


def test_the_synthetic_weeks_have_the_lights_of_a_budget_and_round_trip(
    world: World, tmp_path: Path
) -> None:
    counts = world.light_counts(0)
    lit = world.n - int(world.lapsed.sum())
    assert sum(counts.values()) == lit and counts["red"] == pytest.approx(0.1 * lit, abs=1)
    assert sum(world.red_counts(0).values()) == counts["red"]
    assert world.core(1)[0].tolist() != world.core(0)[0].tolist()  # weeks differ
    assert World(300, 7).core(1)[0].tolist() == world.core(1)[0].tolist()  # deterministic
    path = tmp_path / "score_history.sqlite"
    api_load.write_weeks(str(path), 300, 7, 0, 2)
    with score_history.ReadOnlyHistory(path).open() as q:
        assert q.latest_as_of() == "2026-01-12" and q.count("2026-01-12", {}) == 300
        row = q.latest_of("KA000005")
    assert row is not None and row["churn_probability"] == world.core(1)[0][5]


def _account(world: World, week: int, i: int, weeks: list[int]) -> dict[str, Any]:
    p, code = world.core(week)
    return {
        "account_id": world.ids[i],
        "as_of": str(world.as_of(week).date()),
        "churn_probability": float(p[i]),
        "health": api_load.LIGHTS[code[i]] if code[i] < 3 else "green",
        "history": [{"as_of": str(world.as_of(w).date())} for w in weeks],
    }


def test_the_checker_accepts_a_whole_week_and_catches_mixes_and_half_weeks(
    world: World,
) -> None:
    check = Checker(world, 4)
    assert check.account(_account(world, 2, 5, [0, 1, 2])) is None
    # the latest row from week 2 but a history that already holds week 3: two snapshots
    assert "a mix" in str(check.account(_account(world, 2, 5, [0, 1, 2, 3])))
    wrong = _account(world, 2, 5, [0, 1, 2]) | {"churn_probability": 0.5}
    assert "p 0.5" in str(check.account(wrong))
    owner = str(world.owner_names[0])
    day = str(world.as_of(1).date())
    reds = world.red_counts(1)[owner]
    assert check.listing({"as_of": day, "total": reds, "items": []}, owner) is None
    assert check.listing({"as_of": day, "total": reds - 1, "items": []}, owner) is not None
    whole = {
        "n_accounts": world.n,
        "lights": {k: {"accounts": v} for k, v in world.light_counts(1).items()},
    }
    assert check.portfolio({"as_of": day, "summary": whole}) is None
    half = whole | {"n_accounts": world.n // 2}  # a week read while it was being written
    assert "accounts of" in str(check.portfolio({"as_of": day, "summary": half}))
    with pytest.raises(ValueError, match="never written"):
        check.week("2027-01-04")


def test_a_short_real_run_answers_every_request_with_one_whole_week(tmp_path: Path) -> None:
    plan = replace(api_load.QUICK, accounts=400, weeks=2, seconds=0.8, clients=6)
    result = api_load.run(plan, workdir=tmp_path)
    readers, writing = result["phases"]
    for ph in (readers, writing):
        assert ph["errors"] == 0 and ph["inconsistent"] == 0, ph["examples"]
        assert all(ph["by_endpoint"][k]["requests"] > 0 for k, _ in api_load.MIX)
    # weeks landed during the phase, one after the other until it ended (the writer's
    # clock starts with the phase, not when it was spawned before the first one)
    assert len(writing["writer"]) >= 2
    assert len(writing["weeks_seen"]) >= 2
    md = api_load.to_markdown(result)
    assert md.startswith(api_load.TITLE) and "all phases: **0** (goal 0)" in md
    assert list(tmp_path.iterdir()) == []  # the history and server folder are removed
