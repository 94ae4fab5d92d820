"""The sharded detector's shard function (``app.lambda_handler``; the work is ``detector.shard``)."""
