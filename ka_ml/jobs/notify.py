"""`ka-ml notify` as a job: each owner's digest, rebuilt from a score output folder, mailed.

The digests come from ``scores.parquet`` and the run record of one output folder, so a notify
run is reproducible and can be repeated for one owner (``--owner``); composing and sending
the e-mails is :mod:`ka_ml.delivery.mail`'s (SMTP, or ``.eml`` files for a dry run).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ka_ml.config import Config
from ka_ml.delivery.digest import build_digests, read_scored
from ka_ml.delivery.mail import Outgoing, compose, send, write_eml
from ka_ml.errors import KaMlError

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class NotifyResult:
    folder: Path  # the score output folder the digests came from
    outgoing: tuple[Outgoing, ...]
    written: tuple[Path, ...] = ()  # dry run: the .eml files
    sent: bool = False


def scored_folder(outputs: Path, as_of: pd.Timestamp | None) -> Path:
    """``outputs/<as-of>/``; without a date, the latest dated folder holding scores."""
    outputs = Path(outputs)
    if as_of is not None:
        return outputs / str(pd.Timestamp(as_of).date())
    dated = sorted(
        p
        for p in (outputs.iterdir() if outputs.is_dir() else ())
        if _DATE_DIR.match(p.name) and (p / "scores.parquet").exists()
    )
    if not dated:
        raise KaMlError(
            f"No scored date found in '{outputs}'.",
            "run `ka-ml score` first, or pass --as-of / --scores.",
        )
    return dated[-1]


def prepare(
    folder: Path, cfg: Config, owners: Sequence[str] = ()
) -> tuple[tuple[Outgoing, ...], Path]:
    """Digests and e-mails for a score output folder (optionally only some owners)."""
    scores, run = read_scored(folder)
    digests = build_digests(scores, run, cfg.delivery, max_accounts=cfg.report.max_accounts)
    if owners:
        wanted = set(owners)
        known = {d.label for d in digests} | {d.slug for d in digests}
        unknown = sorted(wanted - known)
        if unknown:
            raise KaMlError(
                f"Unknown owner(s) {unknown} in '{folder}'.",
                f"use one of: {', '.join(sorted(d.label for d in digests)[:20])}.",
            )
        digests = [d for d in digests if d.label in wanted or d.slug in wanted]
    return tuple(Outgoing(d, compose(d, cfg.delivery)) for d in digests), Path(folder)


def notify(
    folder: Path,
    cfg: Config,
    *,
    dry_run: bool = False,
    out: Path | None = None,
    owners: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    config_option: str = "",
) -> NotifyResult:
    """Send each owner their digest, or (``dry_run``) write ``out/<owner>.eml`` files;
    ``config_option`` (the run's own ``--config``) is repeated in the command a failure
    prints."""
    if dry_run:
        if out is None:
            raise KaMlError("--dry-run needs --out DIR.", "name a folder for the .eml files.")
        outgoing, folder = prepare(folder, cfg, owners)
        return NotifyResult(folder, outgoing, tuple(write_eml(outgoing, out)), sent=False)
    outgoing, folder = prepare(folder, cfg, owners)
    send(
        outgoing,
        cfg.delivery.smtp,
        os.environ if env is None else env,
        notify_command(folder, cfg, config_option),
    )
    return NotifyResult(folder, outgoing, (), sent=True)


def notify_command(folder: Path, cfg: Config, config_option: str = "") -> str:
    """The ``ka-ml notify`` that sends the digests of ``folder`` again: ``--as-of`` for a
    dated folder of paths.outputs, else ``--scores``; ``config_option`` repeats the run's
    ``--config``."""
    folder = Path(folder)
    if (
        _DATE_DIR.match(folder.name)
        and folder.parent.resolve() == Path(cfg.paths.outputs).resolve()
    ):
        return f"ka-ml notify{config_option} --as-of {folder.name}"
    return f"ka-ml notify{config_option} --scores {shlex.quote(str(folder))}"
