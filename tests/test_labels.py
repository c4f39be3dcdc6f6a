"""Churn and timing labels: each definition on a constructed case, half-open windows, censoring."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures import config, make_history

from ka_ml.errors import ConfigError
from ka_ml.features import churn_labels, timing_labels

AS_OF = pd.Timestamp("2024-04-01")
H = 90  # default horizon


def d(days: int) -> pd.Timestamp:
    """AS_OF + days (negative: before)."""
    return AS_OF + pd.Timedelta(days=days)


def order(account: str, day: int, amount: float = 100.0) -> dict[str, object]:
    return {"account_id": account, "order_date": d(day), "amount": amount}


def contract(account: str, start: int, end: int) -> dict[str, object]:
    return {"account_id": account, "start_date": d(start), "end_date": d(end), "value": 1.0}


def labels(history, definition: str, accounts: list[str]) -> dict[str, tuple[int, str]]:  # type: ignore[no-untyped-def]
    cfg = config(labels={"churn_definition": definition})
    df = churn_labels(history, AS_OF, cfg, pd.Index(accounts))
    return {
        a: (c, k)
        for a, c, k in df[["account_id", "churn", "churn_definition"]].itertuples(index=False)
    }


def test_no_order_churn_is_the_absence_of_orders_in_the_half_open_window() -> None:
    h = make_history(
        [
            order("on_as_of", 0),  # first day of the window: counts
            order("last_day", H - 1),  # last day of the window: counts
            order("after", H),  # the day after the window: does not count
            order("before", -1),  # the day before: does not count
        ]
    )
    got = labels(h, "no_order", ["on_as_of", "last_day", "after", "before", "never"])
    assert {a: c for a, (c, _) in got.items()} == {
        "on_as_of": 0, "last_day": 0, "after": 1, "before": 1, "never": 1,
    }  # fmt: skip
    assert {k for _, k in got.values()} == {"no_order"}


def test_revenue_drop_compares_the_window_with_the_horizon_before() -> None:
    h = make_history(
        [
            order("fell", -30, 1000.0), order("fell", 10, 150.0),  # 150 < 0.2 x 1000
            order("held", -30, 1000.0), order("held", 10, 250.0),  # 250 >= 200
            order("old", -91, 1000.0), order("old", 10, 1.0),  # prior window is [-90, 0): empty
            order("none", -200, 5.0),  # nothing before, nothing now: churned
            order("credit", -10, 100.0), order("credit", 5, 200.0), order("credit", 6, -190.0),
        ]
    )  # fmt: skip
    got = labels(h, "revenue_drop", ["fell", "held", "old", "none", "credit"])
    assert {a: c for a, (c, _) in got.items()} == {
        "fell": 1, "held": 0, "old": 0, "none": 1, "credit": 1,  # credit: net 10 < 20
    }  # fmt: skip
    assert {k for _, k in got.values()} == {"revenue_drop"}


def contract_history():  # type: ignore[no-untyped-def]
    return make_history(
        [order("lapse", 5), order("orders_only", 5)],
        contracts=[
            contract("lapse", -300, 30),  # ends in the window, nothing follows: churn
            contract("renew", -300, 30),
            contract("renew", 31, 395),  # renewal starts in the window: kept
            contract("long", -100, 400),  # covers the window's last day: kept
            contract("late", -300, 30),
            contract("late", H, H + 365),  # starts the day after the window: not known, churn
            contract("gap", -300, 10),
            contract("gap", 50, 60),  # short new contract inside the window: kept
            contract("covers_last_day", -300, H - 1),  # ends on the window's last day: kept
            contract("ends_before_last", -300, H - 2),  # ends the day before: churn
            contract("long_gone", -500, -200),  # lapsed long before the window
            contract("recently_lapsed", -400, -30),  # lapsed 30 days before the as-of
        ],
    )


def test_contract_definition_churns_when_contracts_lapse_without_renewal() -> None:
    got = labels(contract_history(), "contract", [
        "lapse", "renew", "long", "late", "gap", "covers_last_day", "ends_before_last",
        "long_gone", "recently_lapsed", "orders_only",
    ])  # fmt: skip
    assert {a: c for a, (c, _) in got.items()} == {
        "lapse": 1, "renew": 0, "long": 0, "late": 1, "gap": 0, "covers_last_day": 0,
        "ends_before_last": 1, "long_gone": 1, "recently_lapsed": 1, "orders_only": 1,
    }  # fmt: skip
    assert {k for _, k in got.values()} == {"contract"}


def test_auto_uses_contracts_where_they_are_around_the_window_else_orders() -> None:
    h = make_history(
        [order("lapse", 5), order("orders_only", 5), order("long_gone", 20)],
        contracts=[
            contract("lapse", -300, 30),  # orders in the window, but its contract lapses
            contract("long_gone", -500, -91),  # ended long before the as-of: orders decide
            contract("recent", -400, -1),  # lapsed the day before: already lost, orders decide
            contract("running", -400, 0),  # still running on the as-of day: contracts decide
            contract("future", 10, 400),  # starts inside the window: contracts decide
        ],
    )
    got = labels(
        h, "auto", ["lapse", "orders_only", "long_gone", "recent", "running", "future", "idle"]
    )
    assert got == {
        "lapse": (1, "contract"),
        "orders_only": (0, "no_order"),
        "long_gone": (0, "no_order"),
        "recent": (1, "no_order"),
        "running": (1, "contract"),
        "future": (0, "contract"),
        "idle": (1, "no_order"),
    }


def test_auto_without_a_contracts_table_is_no_order() -> None:
    h = make_history([order("a", 5)])
    assert labels(h, "auto", ["a", "b"]) == {"a": (0, "no_order"), "b": (1, "no_order")}


def test_contract_definition_without_contracts_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no contracts table"):
        labels(make_history([order("a", 5)]), "contract", ["a"])


def test_labels_keep_the_requested_accounts_order_and_dtypes() -> None:
    h = make_history([order("b", 5)])
    df = churn_labels(h, AS_OF, config(), pd.Index(["c", "b", "a"]))
    assert df["account_id"].tolist() == ["c", "b", "a"]
    assert df["churn"].tolist() == [1, 0, 1]
    assert df["churn"].dtype == "int64"
    assert df["account_id"].dtype == "str" and df["churn_definition"].dtype == "str"


def test_horizon_comes_from_config() -> None:
    h = make_history([order("a", 40)])
    short = churn_labels(h, AS_OF, config(labels={"horizon_days": 30}), pd.Index(["a"]))
    assert short["churn"].tolist() == [1]


# -- timing ----------------------------------------------------------------------------------
def test_days_to_next_is_the_first_order_on_or_after_the_as_of() -> None:
    h = make_history([order("a", -3), order("a", 12), order("a", 40), order("b", 0)])
    df = timing_labels(h, AS_OF, d(100), pd.Index(["a", "b"]))
    assert df["days_to_next"].tolist() == [12.0, 0.0]
    assert df["next_order_observed"].tolist() == [True, True]


def test_no_next_order_before_data_end_is_censored_at_data_end() -> None:
    h = make_history([order("a", -3), order("late", 100), order("edge", 99)])
    df = timing_labels(h, AS_OF, d(100), pd.Index(["a", "late", "edge", "unknown"]))
    assert df["next_order_observed"].tolist() == [False, False, True, False]
    # the order on data_end itself is not visible yet
    assert df["days_to_next"].tolist() == [100.0, 100.0, 99.0, 100.0]
    assert df["next_order_observed"].dtype == bool


def test_censoring_time_is_never_negative() -> None:
    h = make_history([order("a", 5)])
    df = timing_labels(h, AS_OF, d(-10), pd.Index(["a"]))
    assert df["days_to_next"].tolist() == [0.0]
    assert df["next_order_observed"].tolist() == [False]


def test_a_credit_note_is_no_order_for_the_churn_or_the_timing_label() -> None:
    """A refund or return in the window does not "save" a lost account, and the next order
    is the next purchase, not the next credit note."""
    h = make_history(
        [
            order("refunded", -20), order("refunded", 10, -250.0),  # only a credit in W
            order("bought", -20), order("bought", 10, -250.0), order("bought", 30),
        ]
    )  # fmt: skip
    got = labels(h, "no_order", ["refunded", "bought"])
    assert {a: c for a, (c, _) in got.items()} == {"refunded": 1, "bought": 0}
    t = timing_labels(h, AS_OF, d(100), pd.Index(["refunded", "bought"]))
    assert t["days_to_next"].tolist() == [100.0, 30.0]
    assert t["next_order_observed"].tolist() == [False, True]


def test_contract_end_silences_read_whether_orders_stop_before_contracts_do() -> None:
    """A distributor's frame contracts ran on a median 204 days past their accounts' last
    orders (87 of 104 ended contracts); the demo's accounts mostly bought until the end."""
    from ka_ml.features.labels import ContractEnds, contract_end_silences

    h = make_history(
        [
            order("stopped", -400), order("stopped", -300),  # silent 200 days at the end
            order("to_the_end", -120), order("to_the_end", -105),  # silent 5 days at the end
            order("credit", -250), order("credit", -50, -80.0),  # a credit note is no order
            order("dropped", -200), order("dropped", -10),  # bought on after the end: not lost
            order("running", -300),  # its contract runs past the as-of
            order("renewed", -300),  # a later term ended after the as-of
            order("seen_late", -400), order("seen_late", 5),  # ordered after the as-of: unknown
        ],
        contracts=[
            contract("stopped", -465, -100),
            contract("to_the_end", -465, -100),
            contract("credit", -465, -100),
            contract("dropped", -465, -100),
            contract("running", -465, 100),
            contract("renewed", -465, -100), contract("renewed", -99, 200),
            contract("seen_late", -465, -100),
            contract("never_bought", -465, -100),  # no order at all: nothing to read
        ],
    )  # fmt: skip
    got = contract_end_silences(h, AS_OF, H)
    # gone: stopped (200 d), to_the_end (5 d), credit (150 d), seen_late (300 d)
    assert got == ContractEnds(ended=4, stopped_first=3, median_silence=175.0)
    assert contract_end_silences(h, d(-100), H) is None  # none had ended yet
    assert contract_end_silences(make_history([order("a", -5)]), AS_OF, H) is None


@pytest.mark.parametrize(
    ("ended", "stopped", "share", "minimum", "definition", "by_orders"),
    [
        (104, 87, 0.5, 20, "auto", True),  # a distributor's frame contracts
        (202, 151, 0.5, 20, "auto", True),  # an electronics distributor's
        (97, 32, 0.5, 20, "auto", False),  # the demo's contracts bind orders
        (20, 10, 0.5, 20, "auto", False),  # half is not more than half
        (19, 19, 0.5, 20, "auto", False),  # too few ended contracts to say
        (104, 87, None, 20, "auto", False),  # the user keeps contracts by their end
        (104, 87, 0.5, 20, "contract", False),  # only auto is resolved
        (104, 87, 0.9, 20, "auto", False),
    ],
)
def test_auto_judges_by_orders_where_most_ended_contracts_ran_on_past_the_last_order(
    ended: int,
    stopped: int,
    share: float | None,
    minimum: int,
    definition: str,
    by_orders: bool,
) -> None:
    """An electronics distributor kept the default auto: its key accounts, under frame
    contracts, scored a median 0.002 while they stopped buying (14 lost in four months, 1
    red); train's note had given the evidence, 151 of the 202 ended contracts had run on
    past the last order. auto now reads that evidence itself."""
    from ka_ml.config import LabelsConfig
    from ka_ml.features.labels import ContractEnds, orders_stop_first

    labels = LabelsConfig(
        churn_definition=definition, auto_orders_first_share=share, auto_min_contract_ends=minimum
    )
    ends = ContractEnds(ended=ended, stopped_first=stopped, median_silence=200.0)
    assert orders_stop_first(labels, ends) is by_orders
    assert orders_stop_first(labels, None) is False


def test_judged_by_orders_changes_the_definition_and_nothing_else() -> None:
    from ka_ml.config import Config
    from ka_ml.features.labels import judged_by_orders

    cfg = Config()
    got = judged_by_orders(cfg)
    assert got.labels.churn_definition == "no_order" and cfg.labels.churn_definition == "auto"
    assert got.model_dump(exclude={"labels"}) == cfg.model_dump(exclude={"labels"})
    assert got.labels.model_dump(exclude={"churn_definition"}) == cfg.labels.model_dump(
        exclude={"churn_definition"}
    )
