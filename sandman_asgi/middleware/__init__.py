"""ASGI middleware the server wraps around apps."""
