"""Monitoring: input drift against the training reference and outcome backtests."""
