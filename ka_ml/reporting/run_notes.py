"""The run's warnings in a manager's words, one short line each, for the digests and the
console (the report shows them in full: drift banner, "Not a forecast", "About the models").

A manager reads the e-mail, not ``report.html``: a week whose inputs drifted from the
training data, whose scores look back rather than forecast, or whose models are not the
plain story must say so at the top of the digest too, short, with the details left to
the report. Pure: the run record in, sentences out.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ka_ml.features import catalog
from ka_ml.reporting.formatting import fmt_date

_TRAILING_PARENTHESIS = re.compile(r"\s*\([^()]*\)\s*$")


def first_clause(text: str) -> str:
    """The text up to its first ': ' or '. ' outside parentheses, without trailing
    parentheses: "The churn model in use (v2) was made champion by hand (2026-12-05, root):
    test ..." -> "The churn model in use (v2) was made champion by hand"."""
    depth, end = 0, len(text)
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ":." and text[i + 1 : i + 2] in (" ", ""):
            end = i
            break
    head = text[:end].strip()
    while head.endswith(")") and (shorter := _without_last_parenthesis(head)):
        head = shorter
    return head


def _without_last_parenthesis(text: str) -> str:
    """``text`` without its closing parenthesis group, nested ones included ('' if none
    opens it)."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[:i].rstrip(" ,;")
    return ""


def first_sentence(text: str) -> str:
    """The text up to its first '. ' outside parentheses, with its full stop."""
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch == "." and text[i + 1 : i + 2] in (" ", ""):
            return text[: i + 1].strip()
    return text.strip()


def _label(feature: str) -> str:
    try:
        return _TRAILING_PARENTHESIS.sub("", catalog.get(feature).meaning)
    except KeyError:
        return feature


def drift_note(run: dict[str, Any]) -> str:
    """The drift banner in one sentence ('' when there is none)."""
    drift = run.get("drift")
    if not isinstance(drift, dict) or not drift.get("banner"):
        return ""
    feats = [f for f in drift.get("features") or [] if isinstance(f, dict) and "feature" in f]
    if not feats:
        return (
            "Input data warning: this week's data looks different from what the model learned from."
        )
    top = max(feats, key=lambda f: float(f.get("psi") or 0.0))
    n = len(feats)
    what = "input looks" if n == 1 else f"{n} inputs look"
    return (
        f"Input data warning: {'one ' if n == 1 else ''}{what} different from the data the "
        f"model learned from (most: {_label(str(top['feature'])).lower()}); this week's "
        "scores may be less reliable."
    )


def drift_line(run: dict[str, Any]) -> str:
    """The drift banner's first sentence, for the console ('' when there is none)."""
    drift = run.get("drift")
    if not isinstance(drift, dict) or not drift.get("banner"):
        return ""
    message = str(drift.get("message") or "")
    return first_sentence(message) if message else drift_note(run)


def in_sample_note(run: dict[str, Any]) -> str:
    """The look-back note in one sentence ('' when the scores forecast)."""
    in_sample = run.get("in_sample")
    if not isinstance(in_sample, dict) or not in_sample.get("message"):
        return ""
    trained = in_sample.get("churn_trained_as_of")
    when = f" up to {fmt_date(pd.Timestamp(trained))}" if trained else ""
    return (
        f"Not a forecast: the model was trained on data{when}, after this week's date, so "
        "these scores look back at what it already saw happen."
    )


def manager_notes(run: dict[str, Any]) -> list[str]:
    """Every warning of the run, one short sentence each: stale data, drift, look-back, the
    models. Stale data comes first: a late usage export read as 'No product usage for 11
    days' put six accounts on one manager's 'turned red' list."""
    notes = [f"Data check: {str(w)[:1].upper()}{str(w)[1:]}." for w in run.get("freshness") or []]
    notes += [n for n in (drift_note(run), in_sample_note(run)) if n]
    for note in run.get("model_notes") or []:
        head = first_clause(str(note))
        if head:
            notes.append(f"About the models: {head[:1].lower()}{head[1:]}.")
    return notes


__all__ = ["drift_line", "first_clause", "first_sentence", "in_sample_note", "manager_notes"]
