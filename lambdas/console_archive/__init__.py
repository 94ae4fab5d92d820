"""The console's history archive: anomaly groups and feedback from the table's stream to daily JSON lines in S3."""
