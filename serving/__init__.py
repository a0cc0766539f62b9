"""The HTTP service: FastAPI app, settings and request/response schemas (no torch)."""
