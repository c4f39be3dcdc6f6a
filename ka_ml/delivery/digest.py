"""Per-owner digests: each account manager's own accounts, explained in a few lines.

A scores frame (one row per account, with ``owner``) becomes one :class:`OwnerDigest` per
owner: their accounts only, the same report layout as ``report.html`` (filtered rows, the
owner in the title, capped as it is), and a short text + HTML digest ("3 accounts turned red: ..., why,
what to do"). Accounts without an owner form one more group, labelled
``delivery.unassigned_label``, which goes to ``delivery.default_recipient``.

Why it is built this way:

- Pure: scores and the run record in, digests out; the scorer writes them into its staged
  output folder (``owners/``) and ``ka-ml notify`` rebuilds the same digests from the
  saved ``scores.parquet``, so what is mailed is exactly what was written.
- Owner names come from CRM exports: the HTML digest is autoescaped, subjects are cleaned
  of line breaks (no header injection) and file names are slugs (``[a-z0-9.-]``, never a
  path or a hidden file).
- A placeholder address (a domain reserved for examples, :func:`is_placeholder`, like the
  default ``{slug}@example.com``) is nobody's mailbox: an owner's own address is the first
  real one, else ``default_recipient`` stands in; a digest left with a placeholder is
  written, named in the warnings, and never sent (:mod:`ka_ml.delivery.mail`).
- Loops run over owners (a handful) and over the few accounts listed per section; every
  per-account computation is column-wise.
- Bounded memory: :func:`iter_digests` makes one owner's digest at a time and
  :func:`write_owner_files` writes it before the next is made; each owner's report lists at
  most ``max_accounts`` accounts (``report.max_accounts``, most revenue at risk first), like
  ``report.html``, so a run never holds every account's HTML (1M accounts: ~5 GB).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ka_ml.config import DeliveryConfig
from ka_ml.delivery.addresses import (
    ADDRESS_FIX,
    PLACEHOLDERS_TEXT,
    address_warnings,
    first_real_address,
    is_placeholder,
    listed_names,
    own_addresses,
    owner_address,
    owner_address_warnings,
    resolve_address,
    slugify,
)
from ka_ml.errors import KaMlError
from ka_ml.features import catalog
from ka_ml.io import atomic_write_json, atomic_write_text
from ka_ml.reporting.columns import SCORECARD, date_col, flag_col, num_col, text_col
from ka_ml.reporting.formatting import (
    fmt_date,
    fmt_index,
    fmt_money,
    fmt_pct,
    fmt_points,
    fmt_range,
)
from ka_ml.reporting.html import render_report
from ka_ml.reporting.run_notes import in_sample_note, manager_notes
from ka_ml.reporting.summary import (
    DEPENDENCY_RESPONSE,
    RISK_ORDER,
    attention_flags,
    compared_note,
    is_first_run,
    lapsed_from_red,
    last_run,
    newly_alerted,
    no_change_note,
    order_by_risk,
)
from ka_ml.scoring.explain import GROUPS, reason_group
from ka_ml.scoring.light_change import UNCHANGED

OWNERS_DIR = "owners"
INDEX_FILE = "index.json"
_PARENTHESIS = re.compile(r"\s*\([^()]*\)\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class OwnerDigest:
    """One owner's accounts, report and digest, ready to be written or mailed."""

    owner: str | None  # as in accounts.owner; None = the accounts without an owner
    label: str  # the owner, or delivery.unassigned_label
    slug: str  # file-name key: owners/<slug>.html, <slug>.eml
    address: str | None  # where it goes; None = no address could be resolved
    own_address: bool  # a real address of the owner's own (not default_recipient, no placeholder)
    as_of: str  # YYYY-MM-DD
    account_ids: tuple[str, ...]
    counts: dict[str, int]
    subject: str
    text: str
    html: str
    report_html: str = field(repr=False)


# --------------------------------------------------------------------------- owners


def owner_of(scores: pd.DataFrame) -> pd.Series:
    """Each row's owner, trimmed; missing or blank as <NA>."""
    if "owner" not in scores:
        return pd.Series(pd.NA, index=scores.index, dtype="string")
    owner = scores["owner"].astype("string").str.strip()
    return owner.where(owner.ne(""), pd.NA)


def has_owners(scores: pd.DataFrame) -> bool:
    """True when at least one account has an owner (the ``accounts.owner`` column is used)."""
    return bool(owner_of(scores).notna().any())


def unique_slugs(labels: Sequence[str]) -> list[str]:
    """One slug per label, made unique in order ('ann', 'ann-2') so no file overwrites another."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        base = slugify(label)
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append(base if n == 1 else f"{base}-{n}")
    return out


# --------------------------------------------------------------------------- sections


LAPSED_SECTIONS = ("lapsed_red", "lapsed")  # accounts told by why they lapsed, not a light
SCORECARD_NAMES = {key: label.lower() for key, label in SCORECARD}
# beside the account's own action, not a second "Do:" (read: "Do: Start a new-customer
# development plan" then "Do: Dedicated team: keep the quarterly strategic meeting."): the
# response is the company's, about the rest of the portfolio, not about this account
DEPENDENCY_ACTION = (
    f"the business depends too much on this account: keep it as below, and "
    f"{DEPENDENCY_RESPONSE} to spread the risk."
)


def _scorecard_text(shown: pd.DataFrame) -> pd.Series:
    """The business measures that are not green, e.g. 'usage red (…); complaints yellow (…)'.

    Row by row over a section's few listed accounts (a dozen pandas operations per measure
    cost more than the texts themselves: 22 ms a section, 4 s for 15 owners at 100k)."""
    parts: list[list[str]] = [[] for _ in range(len(shown))]
    for key, name in SCORECARD_NAMES.items():
        lights = text_col(shown, f"scorecard_{key}").tolist()
        details = text_col(shown, f"scorecard_{key}_detail").tolist()
        for said, light, detail in zip(parts, lights, details, strict=True):
            if light in ("red", "yellow"):
                said.append(f"{name} {light} ({detail})")
    return pd.Series(["; ".join(p) for p in parts], index=shown.index, dtype="string")


def _items(
    rows: pd.DataFrame, among: pd.Series, limit: int, by: str | None = None
) -> list[dict[str, Any]]:
    """The listed accounts of one section (the rows ``among`` marks), in report order (or
    by column ``by``, descending), as plain records. Only the ordering columns of the
    section and its listed rows are copied, not the section."""
    mask = among.to_numpy(dtype=bool)
    if by is None:
        keys = rows[[c for c in RISK_ORDER if c in rows.columns]]
        first = order_by_risk(keys[mask])[:limit]
    else:
        key = num_col(rows, by)[mask].fillna(-1.0)
        first = key.sort_values(ascending=False, kind="stable").index[:limit]
    shown = rows.loc[first]
    ids = text_col(shown, "account_id")
    name = text_col(shown, "name")
    reasons = [text_col(shown, f"reason_{k}") for k in (1, 2, 3)]  # with "(raises risk)"
    why = reasons[0]
    for more in reasons[1:]:
        why = why.where(more.eq(""), why + "; " + more)
    view = pd.DataFrame(
        {
            "account_id": ids,
            "name": name.where(name.ne(""), ids),
            "tier": text_col(shown, "abc_tier"),
            "health": text_col(shown, "health"),
            "health_prev": text_col(shown, "health_prev"),
            "p": num_col(shown, "churn_probability"),
            "p_prev": num_col(shown, "churn_probability_prev"),
            "change": num_col(shown, "churn_probability")
            - num_col(shown, "churn_probability_prev"),
            "has_prev": num_col(shown, "churn_probability_prev").notna(),
            "at_risk": num_col(shown, "revenue_at_risk"),
            "why": why.str.strip("; "),
            "light_reason": text_col(shown, "light_reason"),
            "action": text_col(shown, "recommended_action"),
            "changes": text_col(shown, "changes"),
            "lifecycle": text_col(shown, "lifecycle"),
            "scorecard": _scorecard_text(shown),
            "win_back": num_col(shown, "win_back_value"),
            "lapsed_why": text_col(shown, "lifecycle_reason"),
            "dep_index": num_col(shown, "dependency_index"),
            "dep_new": newly_alerted(shown),
            "next": _next_order_text(shown),
        }
    )
    return [{str(k): v for k, v in r.items()} for r in view.to_dict("records")]


def _next_order_text(shown: pd.DataFrame) -> pd.Series:
    """'8 Dec 2026 (7 – 10 Dec 2026)': the expected next order and its 80% window, as the
    report's table gives them ('' without a dated forecast). A user planning calls before
    customers would order found the dates only in the report, none in the digests."""
    nxt = date_col(shown, "expected_next_purchase_date")
    lo = date_col(shown, "next_purchase_p10_date")
    hi = date_col(shown, "next_purchase_p90_date")
    texts = [
        "" if pd.isna(n) else f"{fmt_date(n)} (window {fmt_range(a, b)})"
        for n, a, b in zip(nxt, lo, hi, strict=True)
    ]
    return pd.Series(texts, index=shown.index, dtype=object)


def _top_reasons(rows: pd.DataFrame, n: int = 3) -> list[dict[str, Any]]:
    """The most common first reasons among the owner's red and yellow accounts, by what
    they are about (the reasons' own groups: order volume, purchase rhythm,
    contract, ...), in a manager's words rather than the catalog's definitions ("Days from
    the as-of date to the end of the current (or latest) contract; negative when lapsed")."""
    risky = rows[text_col(rows, "health").isin(["red", "yellow"])]
    feature = text_col(risky, "reason_1_feature")
    feature = feature[feature.ne("")]
    counts = feature.map(reason_group).value_counts(sort=False)
    order = sorted(counts.index, key=lambda g: (-int(counts[g]), str(g)))
    return [{"reason": _group_label(str(g)), "accounts": int(counts[g])} for g in order[:n]]


def _group_label(group: str) -> str:
    """'order volume' -> 'Order volume'; a feature outside every group by its catalog
    meaning."""
    if group in {name for _, name in GROUPS}:
        return group[:1].upper() + group[1:]
    try:
        return _PARENTHESIS.sub("", catalog.get(group).meaning)
    except KeyError:
        return group


def digest_context(
    rows: pd.DataFrame,
    *,
    label: str,
    as_of: str,
    max_listed: int,
    currency: str = "",
    rise: float = 0.10,
    notes: Sequence[str] = (),
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything one owner's digest says, computed from their rows (pure).

    ``notes``: the run's warnings in a manager's words (:func:`manager_notes`: input drift,
    scores that look back, how the models came to be in use), shown at the top. ``facts``: the run's summary (``run_record.json``), for what the
    rows may not carry (scores read back from a file): the dependency alert level, the last
    run.

    Sections: accounts that turned red this week, whose risk rose ``rise`` or more, that
    are back from lapsed and red, are still red, that left red with a risk no lower (others
    overtook them in a budget ranking), that left red as their risk fell, above the
    dependency alert, that were red last week and have lapsed since, and lapsed ones
    worth a win-back call; counts per light; the commonest reasons.
    """
    masks = _section_masks(rows, rise)
    health = text_col(rows, "health")
    # a first run has no last week: nothing "turned" or "stayed" red, the red list is the news
    first_run = bool(len(rows)) and is_first_run(rows)
    # ... nor has a run whose last run is too old to compare with (its date, else None)
    last = last_run(rows) if "last_run_as_of" in rows.attrs else (facts or {}).get("last_run")
    lights = ("red", "yellow", "green")
    counts = {
        "accounts": len(rows),
        **{light: int(health.eq(light).sum()) for light in lights},
        **{key: int(mask.sum()) for key, mask in masks.items()},
        # the headline's counts add up to the accounts: lapsed ones carry no light ("180
        # accounts: 18 red, 40 yellow, 88 green" left 34 lapsed unnamed), nor may others
        "no_light": int((~health.isin(lights) & ~masks["lapsed"]).sum()),
    }
    return {
        "label": label,
        "notes": list(notes),
        "as_of": as_of,
        "as_of_text": fmt_date(pd.Timestamp(as_of)) if as_of else "",
        "counts": counts,
        "at_risk": float(num_col(rows, "revenue_at_risk").fillna(0.0).sum()),
        "cur": currency,
        "first_run": first_run,
        "sections": _sections(rows, masks, counts, max_listed, rise, first_run),
        "turned_red_names": [i["name"] for i in _items(rows, masks["turned_red"], max_listed)],
        "back_red_names": [i["name"] for i in _items(rows, masks["back_red"], max_listed)],
        "lapsed_red_names": [i["name"] for i in _items(rows, masks["lapsed_red"], max_listed)],
        "top_reasons": _top_reasons(rows),
        "dependency_action": DEPENDENCY_ACTION,
        "lapsed_sections": LAPSED_SECTIONS,
        "dependency_level": rows.attrs.get(
            "dependency_alert_level", (facts or {}).get("dependency_alert_level")
        ),
        "no_change": no_change_note(last),
        "compared": compared_note(rows)
        if "last_run_as_of" in rows.attrs
        else str((facts or {}).get("compared") or ""),
        "last_run_as_of": str(last["as_of"]) if first_run and last else None,
    }


def _section_masks(rows: pd.DataFrame, rise: float) -> dict[str, pd.Series]:
    """Which rows each section lists, in section order (an account is in one of the first
    four at most)."""
    flags = attention_flags(rows, rise=rise)
    health = text_col(rows, "health")
    left_red = text_col(rows, "health_prev").eq("red") & health.ne("red") & health.ne("")
    # the light follows the ranking (budget lights): an account leaves red when others
    # overtake it, its own risk unchanged or up (read under "No longer red": "Risk up 7 pts
    # since last week"); only a fall of half a point or more (the "unchanged" threshold of
    # the weekly change text) is told as good news
    fell = flags["risk_change"].le(-UNCHANGED).fillna(False).astype(bool)
    turned_red, back_red = flags["turned_red"], flags["back_red"]
    rising = flags["rising"] & ~turned_red & ~back_red
    return {
        "turned_red": turned_red,
        # ordered again after being lapsed, risk usually down: no new red (u-quarter: 29 of
        # 206 "turned red" were these, e.g. "risk 41% (was 82%, -41 pts)")
        "back_red": back_red,
        "rising": rising,
        "still_red": health.eq("red") & ~turned_red & ~back_red & ~rising,
        # green last week, yellow now: the early warning a manager had never been sent (a
        # tier-A account silent for weeks turned yellow as overdue, in no digest)
        "turned_yellow": health.eq("yellow") & text_col(rows, "health_prev").eq("green") & ~rising,
        "left_red_not_lower": left_red & ~fell,
        "improved": left_red & fell,
        "dependency": flag_col(rows, "dependency_alert"),
        # the losses of the week: named apart, the win-back list below is capped by value
        "lapsed_red": lapsed_from_red(rows),
        "lapsed": text_col(rows, "lifecycle").eq("lapsed"),
    }


def _sections(
    rows: pd.DataFrame,
    masks: Mapping[str, pd.Series],
    counts: Mapping[str, int],
    max_listed: int,
    rise: float,
    first_run: bool = False,
) -> list[dict[str, Any]]:
    """The non-empty sections with their first ``max_listed`` accounts and how many more."""
    titles = {
        "turned_red": "Turned red this week",
        "back_red": "Back from lapsed, still at risk",
        "rising": f"Risk rising ({round(rise * 100)}+ points since last week)",
        "still_red": "Red" if first_run else "Still red",
        "turned_yellow": "Turned yellow this week (was green)",
        "left_red_not_lower": "Left red, but risk not lower",
        "improved": "No longer red, risk down",
        "dependency": "Dependency alert",
        "lapsed_red": "Lapsed since last week (was red)",
        "lapsed": "Win-back: lapsed accounts",
    }
    return [
        {
            "key": key,
            "title": title,
            "count": counts[key],
            "rows": _items(
                rows,
                masks[key],
                max_listed,
                "win_back_value" if key in LAPSED_SECTIONS else None,
            ),
            "more": max(counts[key] - max_listed, 0),
        }
        for key, title in titles.items()
        if counts[key]
    ]


def subject_line(
    prefix: str,
    label: str,
    counts: Mapping[str, int],
    as_of: str,
    *,
    first_run: bool = False,
    last_run_as_of: str | None = None,
    look_back: bool = False,
) -> str:
    """One line, no control characters (owner names come from CRM data).

    ``first_run``: no comparison with an earlier run; ``last_run_as_of`` the date of the
    last run when there was one, too old to compare with (read: "first run" in the subject
    above "the last run (31 Aug 2026) is more than 21 days old" in the body); ``look_back``:
    the scores look back (a champion trained after the date), said before anything else."""
    if look_back:  # the body says "Not a forecast": a subject of "first run" hid it
        news = "not a forecast (a look back)"
    elif first_run and last_run_as_of:
        news = f"no comparison with the last run ({fmt_date(last_run_as_of)})"
    elif first_run:
        news = "first run"
    elif counts["turned_red"]:
        news = f"{counts['turned_red']} turned red"
    else:
        news = "risk rising on " + str(counts["rising"]) if counts["rising"] else "no new red"
    label = label if len(label) <= 80 else label[:79] + "…"
    # the date as the body and the report say it ("15 Oct 2026", not "2026-10-15")
    line = f"{prefix} {label}: {news}, {counts['red']} red of {counts['accounts']} accounts" + (
        f" (as of {fmt_date(as_of)})" if as_of else ""
    )
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", line)).strip()


# --------------------------------------------------------------------------- rendering

_TEXT_TEMPLATE = """\
{{ label }}: your key accounts as of {{ as_of_text }}
{% for n in notes %}
! {{ n }}
{% endfor %}
{% if notes %}
  (details at the top of the report)
{% endif %}
{{ counts.accounts }} accounts: {{ counts.red }} red, {{ counts.yellow }} yellow, \
{{ counts.green }} green{% if counts.lapsed %}, {{ counts.lapsed }} lapsed{% endif %}\
{% if counts.no_light %}, {{ counts.no_light }} without a light{% endif %}; \
{{ at_risk|money(cur) }} revenue at risk.
{% if turned_red_names %}
{{ counts.turned_red }} account{{ "s" if counts.turned_red != 1 }} turned red: \
{{ turned_red_names|names(counts.turned_red, "...") }}
{% elif first_run %}
{{ no_change }}.
{% else %}
No account turned red this week.
{% endif %}
{% if compared %}
{{ compared }}
{% endif %}
{% if back_red_names %}
{{ counts.back_red }} account{{ "s" if counts.back_red != 1 }} back from lapsed, still at risk: {{ back_red_names|names(counts.back_red, "...") }}
{% endif %}
{% if lapsed_red_names %}
{{ counts.lapsed_red }} account{{ "s" if counts.lapsed_red != 1 }} that {{ "were" if counts.lapsed_red != 1 else "was" }} red last week {{ "have" if counts.lapsed_red != 1 else "has" }} lapsed: {{ lapsed_red_names|names(counts.lapsed_red, "...") }}
{% endif %}
{% if top_reasons %}
Top reasons: {% for r in top_reasons %}{{ r.reason }} ({{ r.accounts }} account\
{{ "s" if r.accounts != 1 }}){{ "; " if not loop.last }}{% endfor %}.
{% endif %}
{% for s in sections %}

{{ s.title|upper }} ({{ s.count }})
{% for a in s.rows %}
{% if s.key in lapsed_sections %}
- {{ a.name }} ({{ a.account_id }}): lapsed, {{ a.lapsed_why }}; \
{% if s.key == "lapsed_red" %}red last week (risk {{ a.p_prev|pct }}); {% endif %}win-back value \
{{ a.win_back|money(cur) }}
{% else %}
- {{ a.name }} ({{ a.account_id }}{% if a.tier %}, tier {{ a.tier }}{% endif %}): \
{{ a.health or a.lifecycle }}, risk {{ a.p|pct }}{% if a.has_prev %} (was {{ a.p_prev|pct }}, \
{{ a.change|pts }}){% endif %}, {{ a.at_risk|money(cur) }} at risk
{% if s.key == "dependency" %}
  Dependency: index {{ a.dep_index|index }}{% if dependency_level is not none %}, above the \
alert level {{ dependency_level|index }}{% endif %}{% if a.dep_new %} (new this week){% endif %}; \
{{ dependency_action }}
{% endif %}
{% if a.scorecard %}
  Scorecard: {{ a.scorecard }}
{% endif %}
{% endif %}
{% if a.why and s.key not in lapsed_sections %}
  Why: {{ a.why }}
{% endif %}
{% if a.changes %}
  Since last week: {{ a.changes }}
{% endif %}
{% if a.next and s.key not in lapsed_sections %}
  Next order expected: {{ a.next }}
{% endif %}
{% if a.action %}
  Do: {{ a.action }}
{% endif %}
{% endfor %}
{% if s.more %}
  ... and {{ s.more }} more (see the report).
{% endif %}
{% endfor %}

Your full report (your accounts only): owners/{{ slug }}.html in the score output\
{% if attach %}, also attached to this e-mail{% endif %}.
"""

_HTML_TEMPLATE = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2933;\
max-width:720px;line-height:1.45">
<h2 style="margin-bottom:4px">{{ label }}: your key accounts</h2>
<p style="margin-top:0;color:#52606d">as of {{ as_of_text }}</p>
{% if notes %}
<div style="background:#fff4e5;border-left:4px solid #e67e22;padding:6px 12px;margin:8px 0">
<b>Please note</b> <small>(details at the top of the report)</small>
<ul style="margin:4px 0;padding-left:18px">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>
</div>
{% endif %}
<p><b>{{ counts.accounts }}</b> accounts:
<span style="color:#c81e1e"><b>{{ counts.red }}</b> red</span>,
<span style="color:#b7791f"><b>{{ counts.yellow }}</b> yellow</span>,
<span style="color:#2f855a"><b>{{ counts.green }}</b> green</span>\
{% if counts.lapsed %}, <b>{{ counts.lapsed }}</b> lapsed{% endif %}\
{% if counts.no_light %}, <b>{{ counts.no_light }}</b> without a light{% endif %};
<b>{{ at_risk|money(cur) }}</b> revenue at risk.</p>
{% if turned_red_names %}
<p><b>{{ counts.turned_red }} account{{ "s" if counts.turned_red != 1 }} turned red:</b>
{{ turned_red_names|names(counts.turned_red, "…") }}</p>
{% elif first_run %}
<p>{{ no_change }}.</p>
{% else %}
<p>No account turned red this week.</p>
{% endif %}
{% if compared %}<p>{{ compared }}</p>{% endif %}
{% if back_red_names %}
<p><b>{{ counts.back_red }} account{{ "s" if counts.back_red != 1 }} back from lapsed, still at risk:</b>
{{ back_red_names|names(counts.back_red, "…") }}</p>
{% endif %}
{% if lapsed_red_names %}
<p><b>{{ counts.lapsed_red }} account{{ "s" if counts.lapsed_red != 1 }} that \
{{ "were" if counts.lapsed_red != 1 else "was" }} red last week \
{{ "have" if counts.lapsed_red != 1 else "has" }} lapsed:</b>
{{ lapsed_red_names|names(counts.lapsed_red, "…") }}</p>
{% endif %}
{% if top_reasons %}
<p><b>Top reasons:</b> {% for r in top_reasons %}{{ r.reason }} ({{ r.accounts }}){{ "; " if not loop.last }}{% endfor %}.</p>
{% endif %}
{% for s in sections %}
<h3 style="margin-bottom:4px">{{ s.title }} ({{ s.count }})</h3>
<ul style="padding-left:18px;margin-top:4px">
{% for a in s.rows %}
{% if s.key in lapsed_sections %}
<li style="margin-bottom:8px"><b>{{ a.name }}</b> <small>{{ a.account_id }}</small>: lapsed, \
{{ a.lapsed_why }}; {% if s.key == "lapsed_red" %}red last week (risk {{ a.p_prev|pct }}); {% endif %}\
win-back value <b>{{ a.win_back|money(cur) }}</b></li>
{% else %}
<li style="margin-bottom:8px"><b>{{ a.name }}</b> <small>{{ a.account_id }}\
{% if a.tier %} · tier {{ a.tier }}{% endif %}</small>: {{ a.health or a.lifecycle }}, risk <b>{{ a.p|pct }}</b>\
{% if a.has_prev %} (was {{ a.p_prev|pct }}, {{ a.change|pts }}){% endif %}, \
{{ a.at_risk|money(cur) }} at risk
{% if s.key == "dependency" %}<br><span style="color:#52606d">Dependency:</span> index {{ a.dep_index|index }}\
{% if dependency_level is not none %}, above the alert level {{ dependency_level|index }}{% endif %}\
{% if a.dep_new %} <b>(new this week)</b>{% endif %}; {{ dependency_action }}{% endif %}
{% if a.scorecard %}<br><span style="color:#52606d">Scorecard:</span> {{ a.scorecard }}{% endif %}
{% if a.why %}<br><span style="color:#52606d">Why:</span> {{ a.why }}{% endif %}
{% if a.changes %}<br><span style="color:#52606d">Since last week:</span> {{ a.changes }}{% endif %}
{% if a.next %}<br><span style="color:#52606d">Next order expected:</span> {{ a.next }}{% endif %}
{% if a.action %}<br><span style="color:#52606d">Do:</span> <b>{{ a.action }}</b>{% endif %}
</li>
{% endif %}
{% endfor %}
</ul>
{% if s.more %}<p><small>… and {{ s.more }} more in the report.</small></p>{% endif %}
{% endfor %}
<p style="color:#52606d"><small>Your full report (your accounts only): owners/{{ slug }}.html
in the score output{% if attach %}, also attached to this e-mail{% endif %}.</small></p>
</body></html>
"""


@lru_cache(maxsize=2)
def _template(html: bool) -> jinja2.Template:
    """The compiled digest template (compiled once per process)."""
    return _environment(html).from_string(_HTML_TEMPLATE if html else _TEXT_TEMPLATE)


def _environment(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        money=fmt_money, pct=fmt_pct, pts=fmt_points, index=fmt_index, names=_name_list
    )
    return env


def _name_list(names: Sequence[str], total: int, more: str) -> str:
    """'A, B, ...' as a sentence's end: one period, none added after a name that ends
    with one ('Alpbridge B.V.', not 'Alpbridge B.V..')."""
    text = ", ".join(names) + (f", {more}" if total > len(names) else "")
    return text if text.endswith((".", "…")) else text + "."


def render_digest(context: Mapping[str, Any]) -> tuple[str, str]:
    """The digest as (plain text, HTML)."""
    text = _template(False).render(**context)
    html = _template(True).render(**context)
    return text, html


# --------------------------------------------------------------------------- digests


def _as_of(scores: pd.DataFrame, run: Mapping[str, Any]) -> str:
    raw = run.get("as_of")
    if raw is None and "as_of" in scores and len(scores):
        raw = pd.to_datetime(scores["as_of"]).max()
    return "" if raw is None else str(pd.Timestamp(raw).date())


def iter_digests(
    scores: pd.DataFrame,
    run: Mapping[str, Any],
    delivery: DeliveryConfig,
    *,
    title: str = "Key-account health",
    max_accounts: int | None = None,
) -> Iterator[OwnerDigest]:
    """One digest per owner (sorted by owner), then one for the accounts without an owner,
    made one at a time.

    Every account is in exactly one digest. ``run`` is the score run record (as-of,
    thresholds, models: shown in each owner's report); ``max_accounts`` caps each owner's
    report as ``report.html`` is capped (the digest's counts and lists cover every account).
    """
    scores = scores.reset_index(drop=True)
    as_of = _as_of(scores, run)  # the run's date, the same in every digest
    groups = _owner_groups(scores)
    labels = [
        delivery.unassigned_label if name is None else _CONTROL.sub(" ", name).strip()
        for name, _ in groups
    ]
    for (name, idx), label, slug in zip(groups, labels, unique_slugs(labels), strict=True):
        yield _owner_digest(
            scores.loc[idx], name, label, slug, as_of, run, delivery, title, max_accounts
        )


def build_digests(
    scores: pd.DataFrame,
    run: Mapping[str, Any],
    delivery: DeliveryConfig,
    *,
    title: str = "Key-account health",
    max_accounts: int | None = None,
) -> list[OwnerDigest]:
    """Every owner's digest (:func:`iter_digests`), as a list."""
    return list(iter_digests(scores, run, delivery, title=title, max_accounts=max_accounts))


def _owner_groups(scores: pd.DataFrame) -> list[tuple[str | None, pd.Index]]:
    """Each owner's rows, sorted by owner, then the rows without one (owner ``None``)."""
    owner = owner_of(scores)
    groups: list[tuple[str | None, pd.Index]] = [
        (str(name), idx) for name, idx in sorted(scores.groupby(owner.dropna()).groups.items())
    ]
    unowned = scores.index[owner.isna().to_numpy()]
    if len(unowned):
        groups.append((None, unowned))
    return groups


def _owner_digest(
    rows: pd.DataFrame,
    name: str | None,
    label: str,
    slug: str,
    as_of: str,
    run: Mapping[str, Any],
    delivery: DeliveryConfig,
    title: str,
    max_accounts: int | None = None,
) -> OwnerDigest:
    """One owner's digest: context, subject, text and HTML, and their own report."""
    ctx = digest_context(
        rows,
        label=label,
        as_of=as_of,
        max_listed=delivery.max_listed,
        currency=str(run.get("currency") or ""),
        rise=float(run.get("risk_rise_points") or 0.10),
        notes=manager_notes(dict(run)),
        facts=run.get("summary") if isinstance(run.get("summary"), dict) else None,
    )
    own = own_addresses(name, delivery, owner_address(rows))
    subject = subject_line(
        delivery.subject_prefix,
        label,
        ctx["counts"],
        as_of,
        first_run=ctx["first_run"],
        last_run_as_of=ctx["last_run_as_of"],
        look_back=bool(in_sample_note(dict(run))),
    )
    text, html = render_digest(
        {**ctx, "slug": slug, "subject": subject, "attach": delivery.attach_report}
    )
    return OwnerDigest(
        owner=name,
        label=label,
        slug=slug,
        address=first_real_address(own, delivery.default_recipient),
        own_address=any(not is_placeholder(a) for a in own),
        as_of=as_of,
        account_ids=tuple(text_col(rows, "account_id").tolist()),
        counts=ctx["counts"],
        subject=subject,
        text=text,
        html=html,
        report_html=render_report(
            rows, {**run, "owner": label}, title=title, max_accounts=max_accounts
        ),
    )


def write_owner_files(digests: Iterable[OwnerDigest], folder: Path) -> list[dict[str, Any]]:
    """``<slug>.html`` (report), ``<slug>.digest.txt`` / ``.digest.html`` per owner, each
    owner's written before the next digest is taken (pass :func:`iter_digests` to hold one
    at a time), then ``index.json``: one entry per owner, returned."""
    folder = Path(folder)
    index = []
    for d in digests:  # one iteration per owner
        atomic_write_text(folder / f"{d.slug}.html", d.report_html)
        atomic_write_text(folder / f"{d.slug}.digest.txt", d.text)
        atomic_write_text(folder / f"{d.slug}.digest.html", d.html)
        index.append(
            {
                "owner": d.owner,
                "label": d.label,
                "slug": d.slug,
                "address": d.address,
                "own_address": d.own_address,
                "subject": d.subject,
                **d.counts,
            }
        )
    atomic_write_json(folder / INDEX_FILE, index)
    return index


def read_scored(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A score output folder's ``scores.parquet`` and ``run_record.json``."""
    folder = Path(folder)
    scores_path = folder / "scores.parquet"
    if not scores_path.exists():
        raise KaMlError(
            f"No scores in '{folder}' (scores.parquet is missing).",
            "run `ka-ml score` for that date first, or pass the score output folder.",
        )
    record_path = folder / "run_record.json"
    run: dict[str, Any] = (
        json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {}
    )
    return pd.read_parquet(scores_path), run


__all__ = [
    "ADDRESS_FIX",
    "PLACEHOLDERS_TEXT",
    "OwnerDigest",
    "address_warnings",
    "build_digests",
    "digest_context",
    "has_owners",
    "is_placeholder",
    "listed_names",
    "own_addresses",
    "owner_address_warnings",
    "read_scored",
    "render_digest",
    "resolve_address",
    "slugify",
    "subject_line",
    "write_owner_files",
]
