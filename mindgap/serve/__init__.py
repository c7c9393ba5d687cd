"""The CAM web viewer behind ``mindgap serve``: a FastAPI app factory and one static page.

    from mindgap.serve import create_app
    app = create_app({"plain": model_a, "hide-and-seek": model_b})
    # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from mindgap.serve.app import Viewer, create_app
from mindgap.serve.images import ImageError, decode_image

__all__ = ["ImageError", "Viewer", "create_app", "decode_image"]
