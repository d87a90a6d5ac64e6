"""The harness: processes, sockets and records. Nothing here knows an ASGI rule."""
