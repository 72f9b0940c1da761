"""The operations API: state, control, event stream, OpenAPI description and /metrics.

`app.OperationsApi` is what the server starts; `commands` holds the CLI's `show` and `calls`
(kept free of the server's imports, so the CLI starts fast and without the media core).
"""
