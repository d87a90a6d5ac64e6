"""``sandman dev PATH`` / ``sandman run PATH``: FastAPI and Starlette launchers (fastapi-cli's
rules), next to the uvicorn-compatible ``sandman MODULE:APP``."""
