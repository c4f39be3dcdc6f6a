"""Contract features: time to the end of the contract, its value, renewals, and coverage."""

from __future__ import annotations

import numpy as np

from ka_ml.features import per_account
from ka_ml.features.encode import Arrays


def running(c: Arrays, t: int) -> np.ndarray:
    """Contracts running at day ``t``: started on or before it, ending on or after it (a
    contract known before ``t`` that starts on ``t``, signed ahead, covers ``t``; without a
    ``signed_date`` every known contract started before ``t``)."""
    return (c["start"] <= t) & (c["end"] >= t)


def contract_features(c: Arrays, n: int, t: int) -> dict[str, np.ndarray]:
    """Contract features at as-of day ``t`` (``c`` holds the contracts known before ``t``:
    started before it, or signed before it when the data gives ``signed_date``).

    A contract known at the as-of is known with its end date (it is signed), so the days
    to its end are not a leak; a renewal signed ahead moves them to its own end.
    """
    code, end = c["code"], c["end"]
    run = running(c, t)
    latest_end = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(latest_end, code, end)
    has_any = per_account.count(code, n) > 0
    out = {"contract_days_to_end": np.where(has_any, (latest_end - t).astype(np.float64), np.nan)}
    if "value" in c:
        out["contract_value"] = per_account.count(code[run], n, c["value"][run])
    # follow-on contracts already signed; the ``renewed`` flag is not used because on a
    # contract ending just before the as-of it would reveal a renewal that starts later
    out["contract_renewals"] = np.maximum(per_account.count(code, n) - 1, 0)
    out["has_active_contract"] = (per_account.count(code[run], n) > 0).astype(np.float64)
    return out
