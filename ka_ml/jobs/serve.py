"""`ka-ml serve`: the read API over this config's score history, on one address."""

from __future__ import annotations

from collections.abc import Mapping

from ka_ml.config import Config
from ka_ml.delivery.api import serve as serve_api


def serve(cfg: Config, host: str, port: int, env: Mapping[str, str], workers: int = 1) -> None:
    """Serve until stopped (a token from the environment when the config names one)."""
    serve_api(cfg, host, port, env, workers=workers)
