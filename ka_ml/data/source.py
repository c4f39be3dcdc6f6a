"""Which data a command reads when the user does not say: one rule for CLI and notebooks."""

from __future__ import annotations

import logging
from pathlib import Path

from ka_ml.config import Config

log = logging.getLogger("ka_ml.demo")


def resolve_source(cfg: Config, explicit: str | None = None) -> str:
    """Explicit source, else ``data.source``, else the demo world (generated on first use)."""
    if explicit:
        return explicit
    if cfg.data.source:
        return cfg.data.source
    demo = Path(cfg.data.demo_dir)
    if not (demo / "orders.csv").exists():
        from ka_ml.demo.world import generate_world, write_world

        log.info("generating the demo data in %s (first use) ...", demo)
        world = generate_world(cfg.data.demo_accounts, cfg.data.demo_years, cfg.data.demo_seed)
        write_world(world, demo)
    return str(demo)
