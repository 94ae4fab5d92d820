"""Firehose transform Lambda: validate, normalise and partition records by their own interval."""
