"""Monitoring, pure: input drift against the training reference, outcome backtest metrics.

The ``ka-ml backtest`` job (score history, MLflow, JSON) is :mod:`ka_ml.jobs.backtest`.
"""
