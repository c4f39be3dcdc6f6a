"""The versions a run was made with (Python, ka_ml and the libraries that shape its numbers).

Written into every training run (MLflow), run record and backtest record, so a figure can be
traced to the code that produced it.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from ka_ml import __version__

PACKAGES = ("pandas", "numpy", "lightgbm", "scikit-learn", "mlflow", "shap", "optuna")


def package_versions() -> dict[str, str]:
    """Python, ka_ml and each of :data:`PACKAGES` ("missing" when not installed)."""
    out = {"python": platform.python_version(), "ka_ml": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out
