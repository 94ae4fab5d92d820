"""The console API Lambda: Lookout for Metrics' read and feedback operations over the anomaly table."""
