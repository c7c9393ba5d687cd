"""The CAM viewer's web app: ``create_app(models, ...)`` returns a FastAPI app.

One forward pass per (image, model) gives the probabilities and every class's CAM (:func:`mindgap.cam.cam_model`),
cached (LRU, ``cache_images`` images) by the SHA-256 of the uploaded bytes: another class, another threshold, the
grid of all CAMs or the same file again never runs the model.  Requests that miss the cache at the same time run as
one batch (one worker thread per model takes every waiting image, up to ``max_batch``); identical concurrent
requests wait for the same result.

Every image method of :mod:`mindgap.saliency` can be chosen (``method``): ``cam`` comes from the cached forward
pass; the others are computed per (image, model, method, class), one at a time per model, cached and reported with
their cost in milliseconds.  RISE is bounded: :data:`RISE_MASKS` masks (not the library's 1000) in passes of
:data:`RISE_BATCH` masked images.

All state lives on ``app.state.viewer`` (a :class:`Viewer`), none in module globals, so tests build apps with tiny
models side by side.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import os
import queue
import threading
import time
from urllib.parse import urlencode

import numpy as np
import tensorflow as tf

from mindgap import explanation as explaining, saliency
from mindgap.registry import DEFAULT_METHOD, METHODS, method_names
from mindgap.cam import cam_model
from mindgap.models import model_info
from mindgap.serve import images as imaging
from mindgap.serve.examples import built_in_examples, folder_examples

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
DEFAULT_MAX_UPLOAD_BYTES = 32 * 2**20
DEFAULT_CACHE_IMAGES = 32
DEFAULT_MAX_BATCH = 8
DEFAULT_THRESHOLD = explaining.DEFAULT_THRESHOLD
DEFAULT_TOP_K = explaining.DEFAULT_TOP_K
# RISE's N in the viewer (N forward passes per map) and masked images per pass (its memory bound): its serving options
RISE_MASKS, RISE_BATCH = (METHODS["rise"].serving[key] for key in ("num_masks", "batch_size"))
_FORM_OVERHEAD = 64 * 2**10  # multipart boundaries and the small form fields, on top of the file


class _BadRequest(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class _LRU:
    """A thread-safe dict that forgets its least recently used entries beyond ``capacity``."""

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self._items = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self):
        return len(self._items)


class _Batcher:
    """One worker thread per model: runs every image waiting in its queue as one batch."""

    def __init__(self, run_batch, max_batch):
        self._run_batch = run_batch
        self._max_batch = max(1, int(max_batch))
        self._queue = queue.Queue()
        self._thread = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.images = 0

    def run(self, image):
        """Probabilities and CAMs of one preprocessed image; blocks until its batch is done."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mindgap-serve-batcher", daemon=True)
                self._thread.start()
        future = concurrent.futures.Future()
        self._queue.put((image, future))
        return future.result()

    def close(self):
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                probabilities, cams = self._run_batch(np.stack([image for image, _ in batch]))
            except Exception as error:  # hand the failure to every waiting request
                for _, future in batch:
                    future.set_exception(error)
                continue
            self.batches += 1
            self.images += len(batch)
            for index, (_, future) in enumerate(batch):
                future.set_result((probabilities[index], cams[index]))


@dataclasses.dataclass
class _ServedModel:
    name: str
    info: object
    batcher: _Batcher
    model: object = None
    saliency_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # one saliency map at a time

    @property
    def size(self):
        return int(self.info.input_shape[0])

    def describe(self):
        return {"name": self.name, "head": self.info.head, "input_size": [int(side) for side in self.info.input_shape[:2]],
                "class_names": list(self.info.class_names)}


@dataclasses.dataclass
class _Image:
    display: np.ndarray  # RGB uint8 at the image's aspect ratio, longer side <= display_side
    width: int  # of the upload
    height: int
    inputs: dict  # model input size -> preprocessed (s, s, 3) float32


def _compiled_explainer(model):
    explainer = cam_model(model)
    height, width, channels = (int(side) for side in model.input.shape[1:])

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)])
    def run(images):
        return explainer(images, training=False)

    def run_batch(images):
        probabilities, cams = run(images)
        return probabilities.numpy(), cams.numpy()

    return run_batch


class Viewer:
    """Models, caches and limits of one app; ``app.state.viewer``."""

    def __init__(self, models, *, examples=None, max_upload_bytes=DEFAULT_MAX_UPLOAD_BYTES, max_pixels=imaging.DEFAULT_MAX_PIXELS,
                 min_side=imaging.DEFAULT_MIN_SIDE, display_side=imaging.DEFAULT_DISPLAY_SIDE, cache_images=DEFAULT_CACHE_IMAGES,
                 max_batch=DEFAULT_MAX_BATCH):
        named = list(models.items()) if isinstance(models, dict) else [(model.name, model) for model in models]
        if not named:
            raise ValueError("create_app needs at least one model; pass {'name': model} or a list of models.")
        names = [name for name, _ in named]
        if len(set(names)) != len(names):
            raise ValueError(f"Model names must be unique, got {names}; pass a dict {{'name': model}}.")
        for label, value in (("max_upload_bytes", max_upload_bytes), ("max_pixels", max_pixels), ("min_side", min_side),
                             ("display_side", display_side), ("cache_images", cache_images), ("max_batch", max_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}.")
        self.models = {name: _ServedModel(name, model_info(model), _Batcher(_compiled_explainer(model), max_batch), model)
                       for name, model in named}
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.min_side = min_side
        self.display_side = display_side
        self._images = _LRU(cache_images)
        self._results = _LRU(cache_images * len(self.models))
        self._maps = _LRU(cache_images * len(self.models) * 4)  # other methods' maps, per class
        self._inflight = {}
        self._lock = threading.Lock()
        self._examples_lock = threading.Lock()
        self._examples_source = examples
        self._examples = None
        if examples is not None:  # a bad folder fails now, not on the first page load
            self.examples()

    # -------------------------------------------------------------- counters
    @property
    def forward_passes(self):
        """Images run through any model since the app started."""
        return sum(served.batcher.images for served in self.models.values())

    def stats(self):
        return {"forward_passes": self.forward_passes, "batches": sum(served.batcher.batches for served in self.models.values()),
                "cached_images": len(self._images), "cached_results": len(self._results)}

    def close(self):
        for served in self.models.values():
            served.batcher.close()

    # -------------------------------------------------------------- examples
    def examples(self):
        with self._examples_lock:
            if self._examples is None:
                source = self._examples_source
                self._examples = built_in_examples() if source is None else folder_examples(source, self.max_upload_bytes)
            return self._examples

    # -------------------------------------------------------------- lookups
    def model(self, name):
        if not name:
            return next(iter(self.models.values()))
        served = self.models.get(name)
        if served is None:
            raise _BadRequest(f"Unknown model {name!r}; this server has: {', '.join(self.models)}.", 404)
        return served

    def add_image(self, data):
        """Decode and cache an upload (if new); its id is the SHA-256 of the bytes."""
        if len(data) > self.max_upload_bytes:
            raise _BadRequest(f"The upload is {len(data) / 2**20:.1f} MB, over the {self.max_upload_bytes / 2**20:.1f} MB limit; send a smaller file.", 413)
        image_id = hashlib.sha256(data).hexdigest()[:32]
        if self._images.get(image_id) is None:
            rgb = imaging.decode_image(data, max_pixels=self.max_pixels, min_side=self.min_side)
            inputs = {size: imaging.model_input(rgb, size) for size in {served.size for served in self.models.values()}}
            self._images.put(image_id, _Image(imaging.display_image(rgb, self.display_side), rgb.shape[1], rgb.shape[0], inputs))
        return image_id

    def image(self, image_id):
        entry = self._images.get(image_id) if image_id else None
        if entry is None:
            raise _BadRequest(f"Image id {image_id!r} is not in the cache (never uploaded, or evicted); upload the image again.", 404)
        return entry

    def results(self, image_id, served):
        """(probabilities (c,), cams (h, w, c), milliseconds, ran_model) of one image and model: one forward pass, then cached."""
        key = (image_id, served.name)
        with self._lock:
            cached = self._results.get(key)
            if cached is not None:
                return cached + (False,)
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = concurrent.futures.Future()
        if not owner:
            return future.result() + (False,)
        try:
            started = time.perf_counter()
            value = served.batcher.run(self.image(image_id).inputs[served.size])
            value = value + (1000 * (time.perf_counter() - started),)
            self._results.put(key, value)
            future.set_result(value)
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        return value + (True,)

    def saliency(self, image_id, served, method, class_index):
        """(map (h, w), milliseconds, ran) of one class by ``method``; ``cam`` from :meth:`results`, others computed once.

        Maps other than the CAM are min-max normalised (as :mod:`mindgap.saliency.scores` does before
        boxes), since RISE's carry an offset; the CAM keeps its values (its box uses its positive part).
        """
        if method == DEFAULT_METHOD:  # from the cached forward pass of every class's CAM
            _, cams, milliseconds, ran = self.results(image_id, served)
            return cams[..., class_index], milliseconds, ran
        key = (image_id, served.name, method, class_index)
        cached = self._maps.get(key)
        if cached is not None:
            return cached + (False,)
        entry = self.image(image_id)
        with served.saliency_lock:
            cached = self._maps.get(key)  # a concurrent request may have computed it meanwhile
            if cached is not None:
                return cached + (False,)
            started = time.perf_counter()
            maps = saliency.compute(served.model, entry.inputs[served.size][None], [[class_index]], method=method,
                                    **METHODS[method].serving)
            value = (saliency.scores.min_max(maps[0, ..., 0]), 1000 * (time.perf_counter() - started))
        self._maps.put(key, value)
        return value + (True,)

    @staticmethod
    def class_index(served, class_name, probabilities):
        if not class_name:
            return int(np.argmax(probabilities))
        if class_name not in served.info.class_names:
            raise _BadRequest(f"Unknown class {class_name!r} for model {served.name!r}; GET /api/models lists its {served.info.num_classes} classes.", 422)
        return served.info.class_names.index(class_name)

    # -------------------------------------------------------------- geometry and pictures
    @staticmethod
    def box(cam, served, entry, threshold):
        """The box of one map in the upload's pixels (``mindgap.explanation.image_box``), rounded to 0.1, or None."""
        box = explaining.image_box(cam, served.size, (entry.width, entry.height), threshold)
        return None if box is None else [round(value, 1) for value in box]

    def overlay_png(self, entry, saliency, box, peak=None, max_side=None):
        """The map (h, w) over the image (jet, 50 %), divided by ``peak`` (default its own maximum), with ``box``."""
        display = entry.display if max_side is None else imaging.display_image(entry.display, max_side)
        return imaging.encode_png(explaining.draw(display, saliency, box, (entry.width, entry.height), peak=peak or None))


SERVED_METHODS = tuple(method_names("images", shown=True))  # the registry's: clips need a video, BP is not shown


def _check_method(method):
    if not method:
        return DEFAULT_METHOD
    if method not in SERVED_METHODS:
        raise _BadRequest(f"Unknown method {method!r}; use one of {', '.join(SERVED_METHODS)}.", 422)
    return method


def _check_top_k(top_k, served):
    if top_k is None:
        return min(DEFAULT_TOP_K, served.info.num_classes)
    if not 1 <= top_k <= served.info.num_classes:
        raise _BadRequest(f"top_k must be between 1 and {served.info.num_classes} (the classes of {served.name!r}), got {top_k}.", 422)
    return top_k


def _check_threshold(threshold):
    if threshold is None:
        return DEFAULT_THRESHOLD
    if not 0.0 <= threshold <= 1.0:
        raise _BadRequest(f"threshold must be between 0 and 1 (a fraction of the CAM's maximum), got {threshold}.", 422)
    return float(threshold)


class _UploadLimit:
    """ASGI middleware: answers 413 to a body over the limit, from its Content-Length or while it is read.

    The body is counted chunk by chunk as the app reads it: a client that sends no (or a false) Content-Length
    cannot make the server buffer more than the limit."""

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes + _FORM_OVERHEAD
        self.message = f"The upload is over the {max_bytes / 2**20:.1f} MB limit; send a smaller file."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise _UploadTooLarge(self.message)
            return message

        async def guarded_send(message):
            if state["over"]:
                if not state["started"]:
                    state["started"] = True
                    await self._reject(send)
                return  # drop whatever the app answered to the cut-off body
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _UploadTooLarge:
            if not state["started"]:
                state["started"] = True
                await self._reject(send)

    async def _reject(self, send):
        import json

        body = json.dumps({"error": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _UploadTooLarge(Exception):
    pass


def create_app(models, **options):
    """The CAM viewer: the page at ``/`` and its JSON API under ``/api``.

    Args:
        models: ``{"name": keras.Model}`` or a list of models (named by ``model.name``); mindgap models, as
            :func:`mindgap.cli.load_mindgap_model` loads them.
        **options: keyword options of :class:`Viewer` (the numbers positive integers):
            ``examples``: a folder of example images for the page; default, six canvases of the digits set.
            ``max_upload_bytes``: larger uploads get HTTP 413 (default 32 MiB).
            ``max_pixels``: images with more pixels get HTTP 422 before they are decoded (default 40 million).
            ``min_side``: images with a side below this get HTTP 422 (default 16).
            ``display_side``: overlays are drawn on the image scaled down to this longer side (default 1024);
            boxes are always in the upload's pixels.
            ``cache_images``: how many images (and their results per model) are kept.
            ``max_batch``: largest batch one forward pass takes from concurrent requests.

    Returns:
        ``fastapi.FastAPI`` with ``app.state.viewer`` (a :class:`Viewer`).
    """
    import contextlib

    from fastapi import FastAPI  # the viewer's optional dependency

    viewer = Viewer(models, **options)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        viewer.close()

    app = FastAPI(title="mindgap CAM viewer", lifespan=lifespan)
    app.state.viewer = viewer
    app.add_middleware(_UploadLimit, max_bytes=viewer.max_upload_bytes)
    _add_error_handlers(app)
    _add_routes(app, viewer)
    _add_explain_routes(app, viewer)
    return app


def _add_error_handlers(app):
    """Every error as ``{"error": one line}`` with its HTTP status."""
    from fastapi.exceptions import RequestValidationError  # the viewer's optional dependency
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    async def bad_input(request, exc):  # both carry their status
        return error(exc.status, str(exc))

    app.add_exception_handler(_BadRequest, bad_input)
    app.add_exception_handler(imaging.ImageError, bad_input)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request, exc):
        problem = exc.errors()[0] if exc.errors() else {}
        where = problem.get("loc", ["request"])[-1]
        return error(422, f"Bad parameter {where!r}: {problem.get('msg', 'invalid value')}; see the API in the README.")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, str(exc.detail))


def _add_routes(app, viewer):
    """The page at ``/`` and the JSON API under ``/api`` (the README lists it)."""
    from fastapi.responses import FileResponse, Response  # the viewer's optional dependency

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @app.get("/api/models")
    def list_models():
        """The served models with their classes, and the upload limits."""
        return {"models": [served.describe() for served in viewer.models.values()], "max_upload_bytes": viewer.max_upload_bytes,
                "max_pixels": viewer.max_pixels, "min_side": viewer.min_side, "methods": list(SERVED_METHODS),
                "rise_masks": RISE_MASKS}

    @app.get("/api/examples")
    def list_examples():
        return {"examples": [{"name": name, "url": f"/api/examples/{index}"} for index, (name, _) in enumerate(viewer.examples())]}

    @app.get("/api/examples/{index}")
    def example(index: int):
        found = viewer.examples()
        if not 0 <= index < len(found):
            raise _BadRequest(f"No example {index}; there are {len(found)} (0 to {len(found) - 1}).", 404)
        data = found[index][1]
        kind = "png" if data[:4] == b"\x89PNG" else "jpeg"
        return Response(data, media_type=f"image/{kind}")

    @app.get("/api/stats")
    def stats():
        """Forward passes run and cache sizes (the cache is working when switching classes leaves forward_passes alone)."""
        return viewer.stats()


def _add_explain_routes(app, viewer):
    """``POST /api/explain`` (top-k, box and overlay URL of one image) and ``GET /api/cam.png`` (the overlay)."""
    from fastapi import File, Form, Query, UploadFile  # the viewer's optional dependency
    from fastapi.responses import Response

    @app.post("/api/explain")
    def explain(file: UploadFile | None = File(None), image_id: str | None = Form(None), model: str | None = Form(None),
                class_name: str | None = Form(None), threshold: float | None = Form(None), top_k: int | None = Form(None),
                method: str | None = Form(None)):
        """Explain one image: an upload (``file``) or an earlier one (``image_id``), by ``method`` (default the CAM)."""
        served = viewer.model(model)
        threshold = _check_threshold(threshold)
        method = _check_method(method)
        top_k = _check_top_k(top_k, served)
        if file is not None:
            image_id = viewer.add_image(file.file.read(viewer.max_upload_bytes + 1))
        elif not image_id:
            raise _BadRequest("Send an image file (form field 'file') or the image_id of an earlier upload.", 400)
        entry = viewer.image(image_id)
        probabilities, _, _, ran_model = viewer.results(image_id, served)
        chosen = viewer.class_index(served, class_name, probabilities)
        saliency, milliseconds, ran_method = viewer.saliency(image_id, served, method, chosen)
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        names = served.info.class_names
        query = {"image_id": image_id, "model": served.name, "class_name": names[chosen], "threshold": threshold, "method": method}
        return {
            "image_id": image_id, "model": served.name, "width": entry.width, "height": entry.height,
            "top": [{"class_name": names[index], "probability": float(probabilities[index])} for index in order],
            "class_name": names[chosen], "class_index": chosen, "probability": float(probabilities[chosen]),
            "threshold": threshold, "box": viewer.box(saliency, served, entry, threshold),
            "overlay_url": "/api/cam.png?" + urlencode(query), "ran_model": ran_model,
            "method": method, "method_ms": round(milliseconds, 1), "ran_method": ran_method,
        }

    @app.get("/api/cam.png")
    def cam_png(image_id: str, model: str | None = None, class_name: str | None = None, threshold: float | None = None,
                box: bool = True, scale: str = Query("own", pattern="^(own|shared)$"), max_side: int | None = Query(None, ge=16, le=4096),
                method: str | None = None):
        """One class's map by ``method`` (default the CAM) over the image as PNG, with its box (``box=false`` leaves it out).

        ``scale=shared`` (CAM only) divides by the largest value over all classes' CAMs
        (paper Figure 3) instead of this CAM's own maximum.
        """
        served = viewer.model(model)
        threshold = _check_threshold(threshold)
        method = _check_method(method)
        if scale == "shared" and not METHODS[method].absolute:
            raise _BadRequest(f"scale=shared compares every class's CAM; it needs method=cam, not {method!r}.", 422)
        entry = viewer.image(image_id)
        probabilities, cams, _, _ = viewer.results(image_id, served)
        chosen = viewer.class_index(served, class_name, probabilities)
        saliency, _, _ = viewer.saliency(image_id, served, method, chosen)
        drawn = viewer.box(saliency, served, entry, threshold) if box else None
        peak = float(np.maximum(cams, 0).max()) if scale == "shared" else None
        png = viewer.overlay_png(entry, saliency, drawn, peak=peak, max_side=max_side)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
