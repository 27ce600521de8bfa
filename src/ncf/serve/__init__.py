"""HTTP serving of a saved model: ``create_app(bundle_path)`` (FastAPI) and ``ncf serve DIR``.

Needs the ``serve`` extra (fastapi, uvicorn, orjson).
"""

from ncf.serve.app import create_app

__all__ = ["create_app"]
