"""Per-owner digests: who gets which accounts, what the digest says, and the score/notify flow.

Pure tests use the small typed frame of ``delivery_data``; the end-to-end ones score the
demo world with the session's champion models and read the files back.
"""

from __future__ import annotations

import email
import json
import re
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_config
from delivery_data import AS_OF, OWNER_OF, owned_ids, scores_frame
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, DeliveryConfig, HealthConfig, PathsConfig
from ka_ml.delivery.digest import (
    OwnerDigest,
    build_digests,
    has_owners,
    is_placeholder,
    iter_digests,
    resolve_address,
    slugify,
    subject_line,
    unique_slugs,
    write_owner_files,
)
from ka_ml.delivery.mail import compose
from ka_ml.jobs.score import ScoreResult, run_scoring
from ka_ml.scoring.light_change import BACK_FROM_LAPSED, light_moved_alone

RUN = {"as_of": str(AS_OF.date()), "thresholds": {"red": 0.5, "yellow": 0.25}}


def delivery(**over: object) -> DeliveryConfig:
    return DeliveryConfig.model_validate(over)


def report_owners(html: str) -> list[str]:
    """The owner attribute of every account row of a rendered report."""
    return re.findall(r'<tr data-c="[^"]*"[^>]*\sdata-o="([^"]*)"', html)


# -- who gets which accounts -------------------------------------------------------------


def test_every_account_lands_in_exactly_one_digest_and_unowned_ones_in_their_own_group() -> None:
    digests = build_digests(scores_frame(), RUN, delivery())
    assert [d.label for d in digests] == ["alice.meyer", "bruno.rossi", "unassigned"]
    assert [d.owner for d in digests] == ["alice.meyer", "bruno.rossi", None]
    for d in digests:
        assert set(d.account_ids) == owned_ids(d.owner)
        assert d.counts["accounts"] == len(d.account_ids)
    every = [i for d in digests for i in d.account_ids]
    assert sorted(every) == sorted(OWNER_OF)


def test_each_owner_report_shows_only_that_owners_accounts_with_the_owner_in_the_title() -> None:
    for d in build_digests(scores_frame(), RUN, delivery()):
        owners = report_owners(d.report_html)
        assert len(owners) == len(d.account_ids)
        assert {o.strip() for o in owners} == ({d.owner} if d.owner else {""})
        assert f"· {d.label}</h1>" in d.report_html


def test_the_owners_address_in_the_accounts_table_is_used() -> None:
    """Read on a CRM export with a 'KAM Email' column: no way to map it, so every manager
    got '{slug}@example.com' ('Ben Müller' as ben.muller@..., the real one ben.mueller)."""
    scores = scores_frame()
    emails = {"alice.meyer": "a.meyer@corp.example", "bruno.rossi": "not an address"}
    scores["owner_email"] = scores["owner"].map(emails)
    scores.loc[scores["account_id"] == "A4", "owner_email"] = "old.alice@corp.example"
    got = {d.label: d.address for d in build_digests(scores, RUN, delivery())}
    assert got["alice.meyer"] == "a.meyer@corp.example"  # the most frequent valid one
    assert got["bruno.rossi"] == "bruno.rossi@example.com"  # invalid: the template's
    mapped = delivery(recipients={"alice.meyer": "desk@corp.example"})
    assert resolve_address("alice.meyer", mapped, "a.meyer@corp.example") == "desk@corp.example"


def test_accounts_without_an_owner_go_to_the_default_recipient() -> None:
    digests = build_digests(scores_frame(), RUN, delivery(default_recipient="desk@corp.example"))
    unassigned = digests[-1]
    assert unassigned.owner is None and unassigned.address == "desk@corp.example"
    assert set(unassigned.account_ids) == {"U1", "U2"}


def test_without_any_owner_everything_is_one_unassigned_digest() -> None:
    frame = scores_frame().drop(columns=["owner"])
    assert not has_owners(frame)
    (only,) = build_digests(frame, RUN, delivery(unassigned_label="team"))
    assert only.label == "team" and len(only.account_ids) == len(frame)


@pytest.mark.parametrize(
    ("owner", "settings", "expected"),
    [
        ("alice.meyer", {"recipients": {"alice.meyer": "am@corp.example"}}, "am@corp.example"),
        ("bob@corp.example", {}, "bob@corp.example"),
        ("Anna Müller", {"address_template": "{slug}@corp.example"}, "anna.mueller@corp.example"),
        ("Anna Müller", {"address_template": "{owner}@corp.example"}, None),
        ("x", {"address_template": None, "default_recipient": "d@corp.example"}, "d@corp.example"),
        (None, {"recipients": {"unassigned": "u@corp.example"}}, "u@corp.example"),
        (None, {}, None),
    ],
)
def test_an_owners_address_comes_from_mapping_then_owner_then_template_then_default(
    owner: str | None, settings: dict[str, object], expected: str | None
) -> None:
    assert resolve_address(owner, delivery(**settings)) == expected


@pytest.mark.parametrize(
    ("address", "placeholder"),
    [
        ("petra.hoffmann@example.com", True),
        ("a@mail.example.org", True),
        ("a@EXAMPLE.NET", True),
        ("a@corp.example", True),
        ("a@crm.invalid", True),
        ("a@shop.test", True),
        ("a@box.localhost", True),
        ("a@grosshandel.de", False),
        ("a@example.de", False),  # a registered domain like any other
        ("a@myexample.com", False),
        ("a@example.com.de", False),
        ("a@corp.internal", False),  # the private-network domain: a company's own relay
    ],
)
def test_addresses_in_domains_reserved_for_examples_are_placeholders(
    address: str, placeholder: bool
) -> None:
    assert is_placeholder(address) is placeholder


def test_an_owner_without_a_real_address_gets_the_default_recipient_never_a_placeholder() -> None:
    """Read: Petra Hoffmann's owner_email was blank on all her accounts; her digest was
    addressed to petra.hoffmann@example.com, the default template's placeholder."""
    scores = scores_frame()
    scores["owner_email"] = scores["owner"].map({"alice.meyer": "alice@grosshandel.de"})
    got = {d.label: (d.address, d.own_address) for d in build_digests(scores, RUN, delivery())}
    assert got == {
        "alice.meyer": ("alice@grosshandel.de", True),
        "bruno.rossi": ("bruno.rossi@example.com", False),  # written, named, never sent
        "unassigned": (None, False),
    }
    desk = delivery(default_recipient="desk@grosshandel.de")
    got = {d.label: (d.address, d.own_address) for d in build_digests(scores, RUN, desk)}
    assert got["bruno.rossi"] == ("desk@grosshandel.de", False)
    # a placeholder in the data (the demo's owner_email) does not hide the company's pattern
    company = delivery(address_template="{slug}@grosshandel.de")
    assert (
        resolve_address("bruno.rossi", company, "bruno@example.com") == "bruno.rossi@grosshandel.de"
    )
    mapped = delivery(recipients={"bruno.rossi": "b@crm.invalid"}, default_recipient="d@x.test")
    assert resolve_address("bruno.rossi", mapped) == "b@crm.invalid"  # both placeholders: its own


def test_validate_names_the_owners_without_an_address_from_the_accounts_table() -> None:
    """The same user: validate said nothing; the owners without an address of their own
    were first named by a score run. The accounts table says it before any run."""
    from ka_ml.delivery.addresses import owner_address_warnings

    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "owner": ["alice.meyer", "alice.meyer", "Petra Hoffmann", None],
            "owner_email": ["alice@grosshandel.de", None, None, None],
        }
    )
    (said,) = owner_address_warnings(accounts, delivery())
    assert said.startswith(
        "no e-mail address of their own for 1 owner(s), only a placeholder at example.com"
    )
    assert said.endswith(
        "does not send to: Petra Hoffmann. To send their digests, fill "
        "owner_email for their accounts, name them in delivery.recipients, set "
        "delivery.address_template to your company's pattern (e.g. '{slug}@yourcompany.com'), "
        "or set delivery.default_recipient to receive their digests."
    )
    (desk,) = owner_address_warnings(accounts, delivery(default_recipient="desk@grosshandel.de"))
    assert desk.endswith(
        "Petra Hoffmann; their digests go to delivery.default_recipient (desk@grosshandel.de)."
    )
    assert owner_address_warnings(accounts.drop(columns="owner"), delivery()) == []
    mapped = delivery(recipients={"Petra Hoffmann": "petra@grosshandel.de"})
    assert owner_address_warnings(accounts, mapped) == []


def test_the_owners_real_address_is_preferred_to_a_placeholder_in_the_accounts_table() -> None:
    scores = scores_frame()
    scores["owner_email"] = scores["owner"].map({"alice.meyer": "noreply@example.com"})
    scores.loc[scores["account_id"].eq("A4"), "owner_email"] = "alice@grosshandel.de"  # 1 of 4
    (d, *_) = build_digests(scores, RUN, delivery())
    assert (d.label, d.address, d.own_address) == ("alice.meyer", "alice@grosshandel.de", True)


def test_the_config_rejects_bad_addresses_templates_and_passwords_in_urls() -> None:
    bad: list[dict[str, object]] = [
        {"recipients": {"a": "not an address"}},
        {"default_recipient": "Desk <desk@corp.example>"},
        {"address_template": "{name}@corp.example"},
        {"writeback_url": "postgresql://user:secret@db/crm"},
        {"writeback_table": "scores; drop table x"},
    ]
    for settings in bad:
        with pytest.raises(ValueError):
            delivery(**settings)
    assert delivery(writeback_url="postgresql://reader@db/crm").writeback_url


# -- what a digest says ------------------------------------------------------------------


def test_a_digest_says_why_an_account_turned_red_when_its_risk_did_not_move() -> None:
    """Read: "TURNED RED THIS WEEK - Brightvale Oy: red, risk 47% (was 47%, ±0 pts) ...
    Since last week: No material change since last week." The scorer's text says why;
    the digest shows it under the turned-red account, and one back from lapsed says so."""
    df = scores_frame()
    a1, b2 = df["account_id"].eq("A1"), df["account_id"].eq("B2")
    df.loc[a1, "churn_probability_prev"] = 0.62
    moved = light_moved_alone(
        pd.DataFrame(
            {"account_id": ["A1", "X"], "health": ["red", None],
             "churn_probability": [0.62, 0.9], "lifecycle": ["active", "lapsed"]}
        ),
        pd.DataFrame(
            {"account_id": ["A1", "X"], "health": ["yellow", "red"],
             "churn_probability": [0.62, 0.9], "lifecycle": ["active", "active"]}
        ).set_index("account_id"),
        "churn_probability",
        HealthConfig(red_share=0.5, yellow_share=0.4),
    )[0]  # fmt: skip
    df.loc[a1, "changes"] = moved
    df.loc[b2, "changes"] = BACK_FROM_LAPSED
    df["lifecycle_prev"] = pd.Series(["active"] * len(df)).where(~b2, "lapsed")
    alice, bruno, _ = build_digests(df, RUN, delivery())
    turned = " ".join(alice.text.split("TURNED RED THIS WEEK (1)")[1].split("STILL RED")[0].split())
    assert "risk 62% (was 62%, ±0 pts)" in turned
    assert (
        "Since last week: Risk unchanged at 62%, yet now red: among the riskiest 50% of active "
        "and new accounts, because 1 account ranked above it last week has lapsed or left the "
        "list." in turned
    )
    back = " ".join(bruno.text.split("BACK FROM LAPSED, STILL AT RISK (1)")[1].split()[:40])
    assert "Since last week: Back from lapsed" in back
    assert "New on the list" not in bruno.text + bruno.html


def test_an_account_back_from_lapsed_is_listed_apart_not_as_turned_red() -> None:
    """u-quarter: "Turned red this week" listed "Harborcore AG: red, risk 41% (was 82%,
    -41 pts) ... Back from lapsed after 273 days": 29 of 206 new reds over a quarter had just
    ordered again and their risk fell. They are listed apart, and the report counts the same."""
    from ka_ml.reporting.html import render_report
    from ka_ml.reporting.summary import portfolio_summary

    df = scores_frame()
    b2 = df["account_id"].eq("B2")
    df.loc[b2, ["churn_probability", "churn_probability_prev"]] = [0.41, 0.82]
    df["lifecycle_prev"] = pd.Series(["active"] * len(df)).where(~b2, "lapsed")
    df.loc[b2, "changes"] = "Back from lapsed after 273 days without an order."
    bruno = build_digests(df, RUN, delivery())[1]
    assert bruno.counts["turned_red"] == 0 and bruno.counts["back_red"] == 1
    assert "TURNED RED" not in bruno.text and "turned red:" not in bruno.text
    assert "No account turned red this week." in bruno.text
    back = bruno.text.split("BACK FROM LAPSED, STILL AT RISK (1)")[1].split("\n\n")[0]
    assert "B2 Holdings" in back and "risk 41% (was 82%, -41 pts)" in back
    assert "Back from lapsed, still at risk (1)" in bruno.html
    assert "turned red" not in bruno.subject
    assert "1 account back from lapsed, still at risk: B2 Holdings" in bruno.text
    summary = portfolio_summary(df)
    assert summary["turned_red"] == 1 and summary["back_red"] == 1  # A1; B2 apart
    report = " ".join(render_report(df, RUN).split())
    assert "1 turned red, 1 back from lapsed (still red)," in report
    attention = report.split('id="attention"')[1].split("</table>")[0]
    assert "back from lapsed, still red" in attention


def test_the_digest_names_who_turned_red_why_and_what_to_do() -> None:
    alice, bruno, _ = build_digests(scores_frame(), RUN, delivery())
    assert alice.counts == {
        "accounts": 4,
        "red": 2,
        "yellow": 0,
        "green": 2,
        "turned_red": 1,
        "back_red": 0,
        "rising": 0,
        "still_red": 1,
        "turned_yellow": 0,
        "left_red_not_lower": 0,
        "improved": 1,
        "dependency": 0,
        "lapsed_red": 0,
        "lapsed": 0,
        "no_light": 0,
    }
    assert "1 account turned red: A1 Holdings <b>&</b>." in alice.text
    turned = alice.text.split("TURNED RED THIS WEEK (1)")[1].split("STILL RED")[0]
    assert "A1 Holdings" in turned and "risk 62% (was 30%, +32 pts)" in turned
    assert "Why: No order for 40 days (raises risk)" in turned
    assert "Do: Call the buyer this week." in turned
    # when to call: the forecast the report's table gives (a user found it in no digest)
    assert "Next order expected: 21 Jun 2026 (window 6 Jun – 31 Jul 2026)" in turned
    assert "Next order expected:</span> 21 Jun 2026 (window 6 Jun – 31 Jul 2026)" in alice.html
    assert "NO LONGER RED, RISK DOWN (1)" in alice.text and "A3 Holdings" in alice.text
    assert "Top reasons: Purchase rhythm (2 accounts)" in alice.text
    # B2 is new (no previous light): it turned red; B1 rose 20 points
    assert bruno.counts["turned_red"] == 1 and bruno.counts["rising"] == 1
    assert "RISK RISING (10+ POINTS SINCE LAST WEEK) (1)" in bruno.text
    assert "B1 Holdings" in bruno.text.split("RISK RISING")[1]
    # the date as the body says it ("as of 1 Jun 2026"), not as "2026-06-01"
    assert (
        alice.subject == "[ka-ml] alice.meyer: 1 turned red, 2 red of 4 accounts (as of 1 Jun 2026)"
    )
    assert alice.text.startswith("alice.meyer: your key accounts as of 1 Jun 2026\n")


def test_an_account_that_left_red_while_its_risk_rose_is_not_told_as_an_improvement() -> None:
    """hugo.keller, 8 Oct, "NO LONGER RED (8)": Fjordcore GmbH "Risk up 7 pts since last
    week", Kestrelbridge B.V. "Risk unchanged at 44%, yet now yellow ... because 202
    accounts ranked below it last week are now riskier": budget lights rank the accounts,
    so one leaves red when others overtake it. Only those whose risk fell are "no longer
    red"; the others are listed apart, each with its own change."""
    df = scores_frame()
    moves = {  # id: (this week, last week), all red last week and yellow now
        "A2": (0.52, 0.46),  # risk up 6 pts
        "A3": (0.44, 0.442),  # unchanged (under half a point)
        "A4": (0.45, 0.46),  # down 1 pt
    }
    for i, (p, p_prev) in moves.items():
        df.loc[df["account_id"].eq(i), ["health", "health_prev"]] = ["yellow", "red"]
        df.loc[df["account_id"].eq(i), ["churn_probability", "churn_probability_prev"]] = [
            p,
            p_prev,
        ]
    alice = build_digests(df, RUN, delivery())[0]
    assert (alice.counts["left_red_not_lower"], alice.counts["improved"]) == (2, 1)
    assert "NO LONGER RED (" not in alice.text
    left = alice.text.split("LEFT RED, BUT RISK NOT LOWER (2)\n")[1].split("\n\n")[0]
    assert "A2 Holdings <b>&</b> (A2, tier B): yellow, risk 52% (was 46%, +6 pts)" in left
    assert "A3 Holdings <b>&</b> (A3, tier C): yellow, risk 44% (was 44%, ±0 pts)" in left
    down = alice.text.split("NO LONGER RED, RISK DOWN (1)\n")[1].split("\n\n")[0]
    assert "A4 Holdings <b>&</b> (A4, tier A): yellow, risk 45% (was 46%, -1 pt)" in down
    assert "A2 Holdings" not in down and "A3 Holdings" not in down
    # the worse news first: after "still red", before the good news
    assert alice.text.index("LEFT RED, BUT") < alice.text.index("NO LONGER RED, RISK DOWN")
    assert "Left red, but risk not lower (2)" in alice.html
    assert "No longer red, risk down (1)" in alice.html


def lapsed_this_week(df: pd.DataFrame, ids: dict[str, float]) -> pd.DataFrame:
    """``ids`` (id -> win-back value) lapsed this week: no light, no revenue at risk."""
    gone = df["account_id"].isin(list(ids))
    df["lifecycle"] = pd.Series("active", index=df.index).where(~gone, "lapsed")
    df["lifecycle_prev"] = "active"
    df["lifecycle_reason"] = pd.Series("", index=df.index).where(
        ~gone, "no order for 189 days (typical gap 61 days)"
    )
    df["win_back_value"] = df["account_id"].map(ids)
    df.loc[gone, ["health", "revenue_at_risk"]] = [None, 0.0]
    return df


def test_an_account_red_last_week_that_lapsed_is_named_before_the_capped_win_back_list(
    tmp_path: Path,
) -> None:
    """hugo.keller, 8 Oct: Alpbridge B.V. was red on 1 Oct and lapsed on 8 Oct, and the
    digest named it nowhere: no light, so not "no longer red", and its win-back value too
    small for the win-back list's first ten (8 such accounts that week, 9 the next)."""
    from openpyxl import load_workbook

    from ka_ml.reporting.excel import write_excel
    from ka_ml.reporting.html import render_report
    from ka_ml.reporting.summary import portfolio_summary

    df = scores_frame()
    df.loc[df["account_id"].eq("A2"), "name"] = "Alpbridge B.V."
    df.loc[df["account_id"].eq("A2"), "churn_probability_prev"] = 0.84
    # A2 was red and lapsed; A4 was green and lapsed, worth more to win back
    df = lapsed_this_week(df, {"A2": 846.0, "A4": 50_000.0})
    alice = build_digests(df, RUN, delivery(max_listed=1))[0]
    assert alice.counts["lapsed_red"] == 1 and alice.counts["lapsed"] == 2
    assert "\n1 account that was red last week has lapsed: Alpbridge B.V.\n" in alice.text
    section = alice.text.split("LAPSED SINCE LAST WEEK (WAS RED) (1)\n")[1].split("\n\n")[0]
    assert section.startswith(
        "- Alpbridge B.V. (A2): lapsed, no order for 189 days (typical gap 61 days); red last "
        "week (risk 84%); win-back value 846\n"
    )
    assert alice.text.index("LAPSED SINCE LAST WEEK") < alice.text.index("WIN-BACK: LAPSED")
    win_back = alice.text.split("WIN-BACK: LAPSED ACCOUNTS (2)")[1]
    assert "A4 Holdings" in win_back and "Alpbridge" not in win_back  # capped at 1, by value
    assert "1 account that was red last week has lapsed:</b>\nAlpbridge B.V.</p>" in alice.html
    assert "Lapsed since last week (was red) (1)" in alice.html
    assert "red last week (risk 84%)" in alice.html
    # the report and the spreadsheet count and name it too
    assert portfolio_summary(df)["lapsed_red"] == 1
    report = " ".join(render_report(df, RUN).split())
    assert "win-back value 50,846; 1 of them red last week</span>" in report
    table = report.split('id="lapsed-red"')[1].split("</table>")[0]
    assert "Alpbridge B.V." in table and "A4 Holdings" not in table and ">84%<" in table
    book = load_workbook(write_excel(df, RUN, tmp_path / "s.xlsx"), read_only=True)
    rows = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r}
    assert rows["Lapsed since last week (was red)"] == 1
    # an account lapsed for longer, or green last week, is only in the win-back list
    df["lifecycle_prev"] = "lapsed"
    df["health_prev"] = df["health_prev"].where(~df["account_id"].eq("A2"), None)
    alice = build_digests(df, RUN, delivery())[0]
    assert "LAPSED SINCE" not in alice.text and "has lapsed" not in alice.text


def test_the_headline_counts_add_up_and_agree_with_the_report_and_the_spreadsheet(
    tmp_path: Path,
) -> None:
    """Read: "180 accounts: 18 red, 40 yellow, 88 green" (146: the 34 lapsed unnamed), and
    the report's "79 need attention: 8 turned red, 79 risk up ≥ 10 pts" beside the digest's
    "RISK RISING (71)", which lists the 8 that turned red apart."""
    from openpyxl import load_workbook

    from ka_ml.reporting.excel import write_excel
    from ka_ml.reporting.html import render_report

    df = lapsed_this_week(scores_frame(), {"A2": 846.0, "A4": 50_000.0})
    df.loc[df["account_id"].eq("B3"), "health"] = None  # no light, not lapsed
    alice, bruno, _ = build_digests(df, RUN, delivery())
    assert "\n4 accounts: 1 red, 0 yellow, 1 green, 2 lapsed; " in alice.text
    assert "\n3 accounts: 1 red, 1 yellow, 0 green, 1 without a light; " in bruno.text
    assert "</span>, <b>2</b> lapsed;" in " ".join(alice.html.split())
    assert "</span>, <b>1</b> without a light;" in " ".join(bruno.html.split())
    # A1 and B2 turned red (A1's risk also rose 32 pts), B1's risk rose 20 pts
    assert "RISK RISING (10+ POINTS SINCE LAST WEEK) (1)" in bruno.text
    assert "RISK RISING" not in alice.text
    report = " ".join(render_report(df, RUN).split())
    assert "<b>3</b><span>need attention: 2 turned red, 1 more with risk up ≥ 10 pts</span>" in (
        report
    )
    book = load_workbook(write_excel(df, RUN, tmp_path / "s.xlsx"), read_only=True)
    cells = [r for r in book["Summary"].iter_rows(values_only=True) if r[0]]
    rows = {r[0]: r[1] for r in cells}
    assert (
        rows["Need attention"]
        == 3
        == (
            rows["Turned red this week"]
            + rows["Back from lapsed, still red"]
            + rows["Risk up 10 pts or more, besides those above"]
        )
    )
    lights = {r[0]: r[1] for r in cells[[r[0] for r in cells].index("Light") + 1 :]}
    assert lights["lapsed (no light)"] == 2
    # B3, without a light and not lapsed, is the report's "(none)" light already
    assert sum(lights.values()) == rows["Accounts"] == len(df)


def test_the_html_digest_escapes_crm_text() -> None:
    alice = build_digests(scores_frame(), RUN, delivery())[0]
    assert "A1 Holdings &lt;b&gt;&amp;&lt;/b&gt;" in alice.html
    assert "<b>&</b>" not in alice.html


def test_an_account_that_turned_yellow_reaches_its_manager() -> None:
    """A tier-A account silent under its contract turned yellow (overdue) and was in no
    digest: yellow had no section, so the early warning never left the report."""
    frame = scores_frame()
    frame["health_prev"] = frame["health"]
    frame.loc[0, ["health", "health_prev"]] = ["yellow", "green"]
    frame.loc[0, "churn_probability_prev"] = frame.loc[0, "churn_probability"]
    alice = build_digests(frame, RUN, delivery())[0]
    assert alice.counts["turned_yellow"] == 1
    section = alice.text.split("TURNED YELLOW THIS WEEK (WAS GREEN) (1)")[1]
    assert str(frame.loc[0, "name"]) in section.split("\n\n")[0]


def test_a_long_section_lists_max_listed_accounts_and_counts_the_rest() -> None:
    frame = scores_frame()
    frame["owner"] = "alice.meyer"
    frame["health"] = "red"
    frame["health_prev"] = "green"
    (d,) = build_digests(frame, RUN, delivery(max_listed=2))
    section = d.text.split("TURNED RED THIS WEEK (9)")[1]
    assert section.count("\n- ") == 2
    assert "... and 7 more (see the report)." in section


def test_a_first_run_digest_lists_the_red_accounts_without_claiming_a_change() -> None:
    """Read in a first run's digest: 'No account turned red this week.' above 'STILL RED
    (20)', where there was no last week; the report already said 'First run'."""
    frame = scores_frame()
    frame["owner"] = "alice.meyer"
    frame["health"] = "red"
    frame["health_prev"] = pd.Series([None] * len(frame), dtype="str")
    frame["churn_probability_prev"] = float("nan")
    (d,) = build_digests(frame, RUN, delivery())
    assert "First run: changes are reported from next week on." in d.text
    assert "First run: changes are reported from next week on." in d.html
    assert "STILL RED" not in d.text and "No account turned red" not in d.text
    assert f"\nRED ({len(frame)})\n" in d.text
    assert ": first run, " in d.subject
    # the week after, the same accounts are still red
    frame["health_prev"] = "red"
    frame["churn_probability_prev"] = frame["churn_probability"]
    (d,) = build_digests(frame, RUN, delivery())
    assert f"STILL RED ({len(frame)})" in d.text and "No account turned red" in d.text
    assert ": no new red, " in d.subject


def test_a_look_back_says_so_in_the_subject_not_first_run() -> None:
    """A director's look-back weeks (a champion trained after the date) arrived as "...:
    first run, 12 red of 180 accounts"; only the body said "Not a forecast"."""
    look = {**RUN, "in_sample": {"message": "m", "churn_trained_as_of": "2026-10-01"}}
    for d in build_digests(scores_frame(), look, delivery()):
        assert ": not a forecast (a look back), " in d.subject and "first run" not in d.subject
    assert not any(
        "not a forecast" in d.subject for d in build_digests(scores_frame(), RUN, delivery())
    )


def test_subjects_and_headers_survive_hostile_owner_names() -> None:
    frame = scores_frame()
    frame["owner"] = "eve\r\nBcc: all@corp.example"
    settings = delivery(default_recipient="desk@corp.example", address_template=None)
    (d,) = build_digests(frame, RUN, settings)
    assert "\n" not in d.subject and "\r" not in d.subject
    msg = compose(d, settings)
    assert msg["Bcc"] is None and msg["To"] == "desk@corp.example"
    headers = msg.as_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers
    assert d.label == "eve Bcc: all@corp.example" and d.owner == frame["owner"][0]
    assert d.text.startswith("eve Bcc: all@corp.example: your key accounts")
    assert subject_line("[x]", "a\tb\x00c", d.counts, "2026-06-01").startswith("[x] a b c:")


def test_slugs_are_safe_readable_and_unique() -> None:
    assert slugify("Anna Müller") == "anna.mueller"
    assert slugify("../../etc/passwd") == "etc.passwd"
    assert slugify("...") == "owner"
    slugs = unique_slugs(["Anna Müller", "anna mueller", "ANNA-MUELLER"])
    assert slugs == ["anna.mueller", "anna.mueller-2", "anna.mueller-3"]
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", s) for s in slugs)


@pytest.mark.parametrize(
    ("owner", "slug"),
    [
        ("Jürgen Weiß", "juergen.weiss"),
        ("Sabine Köhler", "sabine.koehler"),
        ("Anja Schröder", "anja.schroeder"),
        ("Petra Hoffmann", "petra.hoffmann"),
        ("ÄNNE ÖZTÜRK-GROẞ", "aenne.oeztuerk.gross"),
        ("Ju\u0308rgen Weiß", "juergen.weiss"),  # ü as u + combining diaeresis (NFD)
        ("François Béranger", "francois.beranger"),
        ("Ayşe Çelik", "ayse.celik"),  # other accents are dropped, as before
    ],
)
def test_slugs_spell_out_german_umlauts_and_sharp_s(owner: str, slug: str) -> None:
    """Read: 'Jürgen Weiß' became owners/jurgen.wei.html and jurgen.wei.eml, 'Sabine
    Köhler' sabine.kohler, and the address template would have mailed
    jurgen.wei@yourcompany.com: German names are spelled out as German addresses are."""
    assert slugify(owner) == slug
    settings = delivery(address_template="{slug}@grosshandel.example")
    assert resolve_address(owner, settings) == f"{slug}@grosshandel.example"


def test_names_spelled_with_and_without_umlauts_still_get_their_own_files() -> None:
    slugs = unique_slugs(["Jürgen Weiß", "Juergen Weiss", "Jurgen Weis"])
    assert slugs == ["juergen.weiss", "juergen.weiss-2", "jurgen.weis"]
    assert unique_slugs(["Jürgen Weiß", "Juergen Weiss"]) == slugs[:2]  # the same every run


def test_owner_files_are_written_per_owner_with_an_index(tmp_path: Path) -> None:
    digests = build_digests(scores_frame(), RUN, delivery())
    write_owner_files(digests, tmp_path / "owners")
    names = {p.name for p in (tmp_path / "owners").iterdir()}
    assert names == {
        "index.json",
        *(f"{d.slug}{ext}" for d in digests for ext in (".html", ".digest.txt", ".digest.html")),
    }
    index = json.loads((tmp_path / "owners" / "index.json").read_text())
    assert [(e["label"], e["accounts"]) for e in index] == [
        ("alice.meyer", 4),
        ("bruno.rossi", 3),
        ("unassigned", 2),
    ]


def test_owner_reports_are_capped_like_the_portfolio_report_but_digests_count_everything() -> None:
    full = {d.label: d for d in build_digests(scores_frame(), RUN, delivery())}
    capped = build_digests(scores_frame(), RUN, delivery(), max_accounts=2)
    for d in capped:
        n = len(d.account_ids)
        assert d.counts == full[d.label].counts and d.text == full[d.label].text
        assert len(report_owners(d.report_html)) == min(n, 2)
        assert ("Showing the 2 accounts with the most revenue at risk of" in d.report_html) == (
            n > 2
        )


def test_owner_files_are_written_one_owner_at_a_time(tmp_path: Path) -> None:
    folder = tmp_path / "owners"
    made: list[str] = []

    def watched() -> Iterator[OwnerDigest]:
        for d in iter_digests(scores_frame(), RUN, delivery()):
            # the previous owner's files are on disk before the next digest is made
            assert all((folder / f"{slug}.html").exists() for slug in made)
            made.append(d.slug)
            yield d

    index = write_owner_files(watched(), folder)
    assert [e["slug"] for e in index] == made and len(made) == 3
    assert json.loads((folder / "index.json").read_text()) == index


# -- end to end: score, then notify --dry-run ---------------------------------------------


def read_eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory: pytest.TempPathFactory) -> ScoreResult:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("digest")
    cfg = trained.cfg.model_copy(
        update={"paths": PathsConfig(outputs=root / "outputs", models=trained.cfg.paths.models)}
    )
    return run_scoring(trained.history, cfg, trained.history.default_as_of)


def test_scoring_writes_one_report_and_digest_per_owner(scored: ScoreResult) -> None:
    owners_dir = scored.out_dir / "owners"
    index = json.loads((owners_dir / "index.json").read_text())
    owners = sorted(scored.scores["owner"].dropna().unique())
    assert [e["owner"] for e in index] == owners  # the demo accounts all have an owner
    assert sum(e["accounts"] for e in index) == len(scored.scores)
    assert scored.record["delivery"]["owner_reports"] == len(owners)
    recorded = json.loads((scored.out_dir / "run_record.json").read_text())
    assert recorded["delivery"]["owner_reports"] == len(owners)
    # the demo's addresses are all example.com: named as placeholders, never sent
    placeholders = {o: f"{o}@example.com" for o in owners}
    assert recorded["delivery"]["placeholder_addressed"] == placeholders
    assert recorded["delivery"]["to_default_recipient"] == {}
    assert not any(e["own_address"] for e in index)
    # the run facts the scorer carries on its frame reach the record (report, notify)
    assert recorded["summary"]["dependency_alert_level"] == 0.4
    assert "last_run" in recorded["summary"] and "dependency_alert_prev" in scored.scores
    for e in index:
        html = (owners_dir / f"{e['slug']}.html").read_text()
        assert set(report_owners(html)) == {e["owner"]}
        assert len(report_owners(html)) == e["accounts"]
        assert (owners_dir / f"{e['slug']}.digest.txt").read_text().startswith(e["owner"])


def test_score_then_notify_dry_run_writes_one_eml_per_owner_with_only_their_accounts(
    trained, demo_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cfg = trained.cfg.model_copy(
        update={"paths": PathsConfig(outputs=tmp_path / "outputs", models=trained.cfg.paths.models)}
    )
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    runner = CliRunner()
    res = runner.invoke(app, ["score", "--config", str(config), "--data", str(demo_dir)])
    assert res.exit_code == 0, res.output
    assert "owner reports + digests in owners/" in res.output
    placeholders = "only a placeholder at example.com"
    assert placeholders in " ".join(res.output.split())  # the scorer names them too
    mail = tmp_path / "mail"
    res = runner.invoke(app, ["notify", "--config", str(config), "--dry-run", "--out", str(mail)])
    assert res.exit_code == 0, res.output
    assert "dry run: wrote" in res.output
    said = " ".join(res.output.split())
    assert "@example.com (placeholder: never sent)" in said and placeholders in said

    (folder,) = (tmp_path / "outputs").glob("20*")
    scores = pd.read_parquet(folder / "scores.parquet")
    by_owner = scores.groupby("owner")["account_id"].apply(set).to_dict()
    files = sorted(mail.glob("*.eml"))
    assert len(files) == len(by_owner)
    for path in files:
        msg = read_eml(path)
        owner = path.stem
        assert msg["To"] == f"{owner}@example.com"
        assert msg["X-Ka-Ml-Owner"] == owner
        assert msg["Subject"].startswith(f"[ka-ml] {owner}: ")
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        assert text.get_content().startswith(f"{owner}: your key accounts")
        (attachment,) = list(msg.iter_attachments())
        report = attachment.get_content()
        assert set(report_owners(report)) == {owner}
        assert len(report_owners(report)) == len(by_owner[owner])
        others = set(scores["account_id"]) - by_owner[owner]
        listed = set(re.findall(r"\((KA\d+)", text.get_content()))
        assert listed <= by_owner[owner] and not listed & others


def test_notify_can_target_one_owner_and_names_unknown_ones(
    scored: ScoreResult, tmp_path: Path
) -> None:
    owner = sorted(scored.scores["owner"].dropna().unique())[0]
    args = ["notify", "--scores", str(scored.out_dir), "--dry-run", "--out", str(tmp_path)]
    res = CliRunner().invoke(app, [*args, "--owner", owner])
    assert res.exit_code == 0, res.output
    assert [p.stem for p in tmp_path.glob("*.eml")] == [owner]
    res = CliRunner().invoke(app, [*args, "--owner", "nobody.here"])
    assert res.exit_code == 2 and "Unknown owner(s) ['nobody.here']" in res.output


def test_notify_explains_a_missing_out_folder_and_an_unscored_date(tmp_path: Path) -> None:
    cfg = Config().model_copy(update={"paths": PathsConfig(outputs=tmp_path / "outputs")})
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    res = CliRunner().invoke(app, ["notify", "--config", str(config), "--dry-run"])
    assert res.exit_code == 2 and "--dry-run needs --out DIR" in res.output
    res = CliRunner().invoke(
        app, ["notify", "--config", str(config), "--as-of", "2026-01-05", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "run `ka-ml score`" in res.output
    res = CliRunner().invoke(app, ["notify", "--config", str(config)])
    assert res.exit_code == 2 and "No scored date found" in res.output


def test_top_reasons_count_what_the_reasons_are_about_in_a_managers_words() -> None:
    from ka_ml.delivery.digest import _top_reasons

    rows = pd.DataFrame(
        {
            "health": ["red", "red", "yellow", "yellow", "green", "red"],
            "reason_1_feature": [
                "orders_90d", "orders_30d", "contract_days_to_end", "recency_days",
                "orders_90d", "not_in_the_catalog",
            ],
        }
    )  # fmt: skip
    assert _top_reasons(rows, n=4) == [
        {"reason": "Order volume", "accounts": 2},  # 30 and 90 days: one thing; green not counted
        {"reason": "Contract", "accounts": 1},  # ties in the order of what they are about
        {"reason": "not_in_the_catalog", "accounts": 1},
        {"reason": "Purchase rhythm", "accounts": 1},
    ]
    assert len(_top_reasons(rows)) == 3


DRIFT = {  # u-quarter's run record, as written
    "available": True,
    "banner": True,
    "features": [{"feature": "usage_recency_days", "level": "alert", "psi": 6.8006}],
    "message": "1 input feature differs from the training data beyond PSI 0.25 (largest: "
    "Days since the last day with any usage (count > 0), PSI 6.80). This week's scores may "
    "be less reliable: check the data export, and retrain (ka-ml train) if the change is real.",
}
IN_SAMPLE = {
    "churn_trained_as_of": "2026-08-10",
    "message": "These scores look back, they do not forecast: the churn model in use (v2) was "
    "trained on data up to 2026-08-10, after this date (2026-06-01), so it has seen what "
    "happened next.",
}
MODEL_NOTES = [
    "No purchase-timing model is champion yet: the next-order dates and the chances of an "
    "order within each window are left empty this run; the churn scores and reasons do not "
    "need them (`health.overdue_ratio_fallback`).",
    "The purchase-timing model in use (v1) was promoted although a baseline does better out "
    "of time, within chance (BG/NBD: P(order within 30 d) ROC AUC 0.846 against the model's "
    "0.838): no comparable champion yet.",
]


def test_the_runs_warnings_reach_the_digest_at_the_top_in_a_managers_words() -> None:
    """u-quarter: the drift banner, the look-back note and the model notes were only in
    report.html; managers read the e-mail."""
    run = {**RUN, "drift": DRIFT, "in_sample": IN_SAMPLE, "model_notes": MODEL_NOTES}
    alice = build_digests(scores_frame(), run, delivery())[0]
    head = alice.text.split("accounts: 2 red")[0]
    assert (
        "! Input data warning: one input looks different from the data the model learned "
        "from (most: days since the last day with any usage); this week's scores may be less "
        "reliable." in head
    )
    assert (
        "! Not a forecast: the model was trained on data up to 10 Aug 2026, after this "
        "week's date, so these scores look back at what it already saw happen." in head
    )
    assert "! About the models: no purchase-timing model is champion yet." in head
    assert (
        "! About the models: the purchase-timing model in use (v1) was promoted although a "
        "baseline does better out of time, within chance." in head
    )
    assert "PSI" not in alice.text and "`" not in alice.text  # short, no jargon
    html_head = alice.html.split("accounts:")[0]
    assert "Please note" in html_head and "Not a forecast" in html_head
    assert "Input data warning" in html_head and "no purchase-timing model" in html_head
    quiet = build_digests(scores_frame(), RUN, delivery())[0]
    assert "!" not in quiet.text.split("accounts:")[0] and "Please note" not in quiet.html


def test_stale_data_leads_the_digest() -> None:
    """A late weekly usage export (newest row 11 days before the scoring date) put six
    accounts on a manager's 'turned red' list as 'No product usage for 11 days', and the
    digest said nothing of the export."""
    late = (
        "the usage table's newest row is from 2026-09-27, 11 days before the scoring date "
        "2026-10-08: a longer silence than any in its last year (at most 7 days), while "
        "orders run to 2026-09-30. The export looks late: its features are read as of "
        "2026-09-28, so the missing days do not count as 11 days of silence (check the usage "
        "export)"
    )
    alice = build_digests(scores_frame(), {**RUN, "freshness": [late], "drift": DRIFT}, delivery())[
        0
    ]
    head = alice.text.split("accounts: 2 red")[0]
    assert f"! Data check: T{late[1:]}." in head
    assert head.index("Data check") < head.index("Input data warning")


def test_score_prints_the_drift_banner_in_one_line() -> None:
    """u-quarter: `ka-ml score` printed the look-back note only; the drift banner was in the
    report alone."""
    from io import StringIO

    from rich.console import Console

    from ka_ml.cli import _print_run_warnings

    buf = StringIO()
    _print_run_warnings({"drift": DRIFT, "in_sample": IN_SAMPLE}, Console(file=buf, width=80))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: These scores look back")
    assert lines[1] == (
        "warning: input drift: 1 input feature differs from the training data beyond PSI "
        "0.25 (largest: Days since the last day with any usage (count > 0), PSI 6.80). See "
        "report.html."
    )
    buf = StringIO()
    _print_run_warnings({"drift": {**DRIFT, "banner": False}}, Console(file=buf, width=80))
    assert buf.getvalue() == ""
    # the data's warnings reach the log too (an operator's cron log showed none of the
    # 3,112 duplicate orders dropped); stale data, said before the run, is not said again
    stale = "the newest order in the data is from 2026-09-30, 8 days before ..."
    dropped = "table 'orders': 3,112 exact duplicate rows dropped"
    buf = StringIO()
    _print_run_warnings({"warnings": [dropped, stale], "freshness": [stale]}, Console(file=buf))
    assert buf.getvalue().splitlines() == [f"warning: data: {dropped}"]


def test_a_run_whose_last_run_is_too_old_says_so_with_its_date() -> None:
    """u-quarter: "(first run: changes are reported from next week on)" while earlier runs
    existed, the last older than scoring.previous_run_max_days."""
    from ka_ml.config import Config
    from ka_ml.reporting.html import render_report
    from ka_ml.scoring.score import run_facts

    history = pd.DataFrame({"as_of": pd.to_datetime(["2026-03-30", "2026-04-06"])})
    facts = run_facts(history, AS_OF, Config())
    assert facts["last_run_as_of"] == "2026-04-06" and facts["previous_run_max_days"] == 21
    assert run_facts(None, AS_OF, Config())["last_run_as_of"] is None
    df = scores_frame().assign(health_prev=None, churn_probability_prev=float("nan"))
    df.attrs.update(facts)
    said = "the last run (6 Apr 2026) is more than 21 days old, too long ago to compare with"
    report = " ".join(render_report(df, RUN).split())
    assert said in report and "first run" not in report.lower()
    alice = build_digests(df, RUN, delivery())[0]
    assert f"No comparison this week: {said}; changes are reported from next week on." in (
        alice.text
    )
    # the subject agrees with the body (read: "[ka-ml] Anna Berger: first run, 1 red of 34
    # accounts" above "the last run (31 Aug 2026) is more than 21 days old")
    assert alice.subject.startswith(
        "[ka-ml] alice.meyer: no comparison with the last run (6 Apr 2026), 2 red of 4 "
    )
    assert "first run" not in alice.subject
    # read back from the files (no attrs): the run record's summary says it
    from ka_ml.reporting.summary import portfolio_summary

    run = {**RUN, "summary": portfolio_summary(df)}
    df.attrs.clear()
    alice = build_digests(df, run, delivery())[0]
    assert said in alice.text and "no comparison with the last run (6 Apr 2026)" in alice.subject
    alice = build_digests(df, RUN, delivery())[0]  # no earlier run at all
    assert "First run: changes" in alice.text and ": first run, 2 red of 4 " in alice.subject


def test_a_small_dependency_alert_is_shown_precisely_new_and_with_one_action() -> None:
    """qdep: with portfolio.dependency_alert 0.002 the report showed "Index 0.00" for 0.0044
    and not the alert level; an account newly above it was not flagged as new, and the
    digest gave two "Do:" lines ("Start a new-customer development plan" and "Dedicated
    team: keep the quarterly strategic meeting.")."""
    from ka_ml.reporting.html import render_report

    df = scores_frame()
    a4 = df["account_id"].eq("A4")
    df["dependency_index"] = 0.001
    df.loc[a4, "dependency_index"] = 0.0044
    df["dependency_alert"] = a4
    df["dependency_alert_prev"] = pd.array([False] * len(df), dtype="boolean")
    df["recommended_action"] = "Dedicated team: keep the quarterly strategic meeting."
    df.attrs["dependency_alert_level"] = 0.002
    report = " ".join(render_report(df, RUN).split())
    dep = report.split('id="dependency"')[1].split("</table>")[0]
    assert "above the alert level 0.002)" in dep
    assert "0.0044<small>new this week</small>" in dep and "0.00<" not in dep
    alice = build_digests(df, RUN, delivery())[0]
    section = alice.text.split("DEPENDENCY ALERT (1)")[1].split("\n\n")[0]
    assert (
        "Dependency: index 0.0044, above the alert level 0.002 (new this week); the business "
        "depends too much on this account: keep it as below, and start a new-customer "
        "development plan to spread the risk." in " ".join(section.split())
    )
    assert section.count("Do:") == 1
    assert "Do: Dedicated team: keep the quarterly strategic meeting." in section
    assert "(new this week)" in alice.html
    df["dependency_alert_prev"] = pd.array([True] * len(df), dtype="boolean")
    assert "new this week" not in build_digests(df, RUN, delivery())[0].text
