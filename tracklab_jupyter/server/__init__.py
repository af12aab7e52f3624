"""REST and WebSocket serving: the Jupyter server extension and the standalone server."""
