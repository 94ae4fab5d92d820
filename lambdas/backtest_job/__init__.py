"""Loyalty backtest job (S3 upload -> backtest -> groups and alerts)."""
