"""The deliveries a score run makes itself: owner files and the database write-back.

Named for when it runs: ``run_scoring`` calls :func:`stage_delivery` while its output
folder is still staged, just before the run record is written, so these deliveries are
part of the run. The owner files (``owners/``) land in the same atomic swap as
``report.html`` (a failed run leaves none of them). The write-back
(:func:`write_back_scores`, one transaction) runs after the files and the score history
are published, so a database failure never costs the week's files. The record says what
was delivered. The other channels run on their own: ``ka-ml notify`` mails the digests
afterwards, and the read API serves the score history at any time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ka_ml.config import Config
from ka_ml.delivery.addresses import address_status
from ka_ml.delivery.digest import OWNERS_DIR, has_owners, iter_digests, write_owner_files
from ka_ml.delivery.writeback import write_back


def owner_reports_due(scores: pd.DataFrame, cfg: Config) -> bool:
    """Whether this run writes ``owners/``: owner reports are on and accounts have owners."""
    return cfg.delivery.owner_reports and has_owners(scores)


def stage_delivery(
    stage: Path,
    scores: pd.DataFrame,
    record: dict[str, Any],
    cfg: Config,
) -> None:
    """Write ``stage/owners/`` (when accounts have owners; one owner at a time, each report
    capped at ``report.max_accounts``); the record names the digests without an address,
    those with only a placeholder and the owners whose digest goes to
    ``delivery.default_recipient``."""
    delivery: dict[str, Any] = {}
    if owner_reports_due(scores, cfg):
        digests = iter_digests(scores, record, cfg.delivery, max_accounts=cfg.report.max_accounts)
        index = write_owner_files(digests, Path(stage) / OWNERS_DIR)
        delivery["owner_reports"] = len(index)
        delivery["unaddressed"] = [e["label"] for e in index if not e["address"]]
        # owners without an address of their own: a placeholder (never sent), or the stand-in
        status = {
            e["label"]: address_status(e["address"], e["own_address"], e["owner"] is not None)
            for e in index
        }
        for key, said in (
            ("placeholder_addressed", "placeholder"),
            ("to_default_recipient", "default"),
        ):
            delivery[key] = {e["label"]: e["address"] for e in index if status[e["label"]] == said}
    if delivery:
        record["delivery"] = delivery


def write_back_scores(scores: pd.DataFrame, url: str, cfg: Config) -> dict[str, Any]:
    """Upsert ``scores`` into ``delivery.writeback_table`` at ``url``; what the record keeps."""
    res = write_back(
        scores,
        url,
        table=cfg.delivery.writeback_table,
        lock_timeout_s=cfg.data.lock_timeout_seconds,
    )
    return {
        "url": res.url,
        "table": res.table,
        "rows": res.rows,
        "removed": res.removed,
        "added_columns": list(res.added_columns),
    }
