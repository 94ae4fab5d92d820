"""The sharded detector's merge function (``app.lambda_handler``; the work is ``detector.merge``)."""
