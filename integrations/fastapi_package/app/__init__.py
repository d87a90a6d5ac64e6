"""A FastAPI project laid out as a package (FastAPI's "bigger applications" layout)."""
