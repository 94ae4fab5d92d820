"""Built-in detector Lambda: scores each closed interval's S3 folder, stores anomaly groups, publishes alerts."""
