"""The CAM viewer's API through FastAPI's test client, with tiny untrained models."""

import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import mindgap  # noqa: E402
from mindgap.cam import cam_model, upsample_map  # noqa: E402
from mindgap.cli import main  # noqa: E402
from mindgap.metrics import cam_to_box  # noqa: E402
from mindgap.serve import create_app  # noqa: E402
from mindgap.serve.app import _Batcher  # noqa: E402
from mindgap.serve.images import model_input  # noqa: E402

CLASSES = ["cat", "dog", "owl", "ant", "bee", "elk", "fox"]
SIZE = 32


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def random_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_claiming_size(width, height):
    """A valid PNG header announcing width × height, with one tiny IDAT: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def models():
    plain = mindgap.build_model("Tiny-GAP5", len(CLASSES), input_shape=(SIZE, SIZE, 3), class_names=CLASSES)
    zhou = mindgap.build_model("Tiny-GAP-Zhou", 3, input_shape=(24, 24, 3), class_names=["a", "b", "c"])
    return {"plain": plain, "zhou": zhou}


@pytest.fixture(scope="module")
def client(models):
    app = create_app(models, max_upload_bytes=200_000, max_pixels=1_000_000, cache_images=4)
    with TestClient(app) as test_client:
        yield test_client


def explain(client, image=None, **fields):
    files = {"file": ("upload.png", image, "image/png")} if image is not None else None
    return client.post("/api/explain", files=files, data={key: str(value) for key, value in fields.items()})


def forward_passes(client):
    return client.get("/api/stats").json()["forward_passes"]


def test_page_and_model_list(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="panels"' in page.text and "/api/explain" in page.text
    listing = client.get("/api/models").json()
    assert [model["name"] for model in listing["models"]] == ["plain", "zhou"]
    assert listing["models"][0]["class_names"] == CLASSES and listing["models"][0]["input_size"] == [SIZE, SIZE]
    assert listing["models"][1]["head"] == "zhou" and listing["max_upload_bytes"] == 200_000


def test_explain_matches_the_model_and_the_box_maps_back_to_the_image(client, models):
    rgb = random_image(40, 80, seed=1)  # not square: the box must come back in the upload's own pixels
    response = explain(client, png_bytes(rgb), model="plain", threshold=0.3, top_k=3)
    assert response.status_code == 200, response.text
    result = response.json()
    probabilities, cams = cam_model(models["plain"]).predict(model_input(rgb, SIZE)[None], verbose=0)
    order = np.argsort(-probabilities[0])
    assert [entry["class_name"] for entry in result["top"]] == [CLASSES[index] for index in order[:3]]
    np.testing.assert_allclose([entry["probability"] for entry in result["top"]], probabilities[0][order[:3]], rtol=1e-4)
    assert result["class_name"] == CLASSES[order[0]] and result["ran_model"] is True
    square_box = cam_to_box(upsample_map(cams[0, ..., order[0]], (SIZE, SIZE)), 0.3)
    np.testing.assert_allclose(result["box"], square_box * [80 / SIZE, 40 / SIZE, 80 / SIZE, 40 / SIZE], atol=0.051)
    assert (result["width"], result["height"]) == (80, 40)
    overlay = Image.open(io.BytesIO(client.get(result["overlay_url"]).content))
    assert overlay.size == (80, 40) and overlay.format == "PNG"


def test_model_input_is_the_pipelines(tmp_path):
    rgb = random_image(50, 30, seed=2)
    Image.fromarray(rgb).save(tmp_path / "image.png")
    expected, _ = mindgap.data.load_image(str(tmp_path / "image.png"), SIZE)
    np.testing.assert_allclose(model_input(rgb, SIZE), expected, atol=1e-6)


def test_switching_class_and_threshold_never_reruns_the_model(client, models):
    first = explain(client, png_bytes(random_image(48, 48, seed=3)), model="plain").json()
    passes = forward_passes(client)
    boxes = {}
    for threshold in (0.1, 0.5, 0.9):
        again = explain(client, image_id=first["image_id"], model="plain", class_name="owl", threshold=threshold).json()
        assert again["class_name"] == "owl" and again["ran_model"] is False
        boxes[threshold] = again["box"]
    # a higher threshold keeps fewer pixels: each box lies inside the one of a lower threshold
    for low, high in ((0.1, 0.5), (0.5, 0.9)):
        assert boxes[high][0] >= boxes[low][0] and boxes[high][1] >= boxes[low][1]
        assert boxes[high][2] <= boxes[low][2] and boxes[high][3] <= boxes[low][3]
    assert boxes[0.9] != boxes[0.1]
    owl = client.get(f"/api/cam.png?image_id={first['image_id']}&model=plain&class_name=owl").content
    bee = client.get(f"/api/cam.png?image_id={first['image_id']}&model=plain&class_name=bee").content
    tile = client.get(f"/api/cam.png?image_id={first['image_id']}&model=plain&class_name=bee&box=false&scale=shared&max_side=24")
    assert owl != bee and Image.open(io.BytesIO(tile.content)).size == (24, 24)
    same_file = explain(client, png_bytes(random_image(48, 48, seed=3)), model="plain").json()
    assert same_file["image_id"] == first["image_id"] and same_file["ran_model"] is False
    assert forward_passes(client) == passes  # eight requests, no forward pass
    other_model = explain(client, image_id=first["image_id"], model="zhou").json()
    assert other_model["ran_model"] is True and forward_passes(client) == passes + 1


def test_cache_is_bounded(client):
    first = explain(client, png_bytes(random_image(20, 20, seed=10))).json()["image_id"]
    for seed in range(11, 16):  # capacity 4: five newer images push the first one out
        assert explain(client, png_bytes(random_image(20, 20, seed=seed))).status_code == 200
    assert client.get("/api/stats").json()["cached_images"] == 4
    gone = explain(client, image_id=first)
    assert gone.status_code == 404 and "upload the image again" in gone.json()["error"]


def _truncated_png():
    return png_bytes(random_image(64, 64, seed=4))[:600]


def _truncated_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(random_image(64, 64, seed=5)).save(buffer, format="JPEG")
    return buffer.getvalue()[:500]


@pytest.mark.parametrize(
    "make_upload,fields,status,message",
    [
        (lambda: b"%PDF-1.4 not an image at all", {}, 415, "The upload is not an image"),
        (_truncated_png, {}, 400, "probably truncated or corrupt"),
        (_truncated_jpeg, {}, 400, "probably truncated or corrupt"),
        (lambda: b"", {}, 400, "The upload is empty"),
        (lambda: b"\x89PNG" + bytes(300_000), {}, 413, "over the 0.2 MB limit"),
        (lambda: png_bytes(np.zeros((1, 1, 3))), {}, 422, "The image is 1×1 pixels; both sides must be at least 16"),
        (lambda: png_claiming_size(10_000, 10_000), {}, 422, "10000×10000 = 100,000,000 pixels, over the 1,000,000-pixel limit"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"model": "resnet"}, 404, "Unknown model 'resnet'; this server has: plain, zhou"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"class_name": "horse"}, 422, "Unknown class 'horse' for model 'plain'"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"threshold": 1.5}, 422, "threshold must be between 0 and 1"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"top_k": "many"}, 422, "Bad parameter 'top_k'"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"top_k": -5}, 422, "top_k must be between 1 and 7"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"top_k": 0}, 422, "top_k must be between 1 and 7"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"top_k": 10**20}, 422, "top_k must be between 1 and 7"),
        (lambda: png_bytes(random_image(20, 20, seed=6)), {"method": "lime"}, 422, "Unknown method 'lime'; use one of cam, gradcam"),
        (lambda: None, {}, 400, "Send an image file"),
        (lambda: None, {"image_id": "0123abcd"}, 404, "Image id '0123abcd' is not in the cache"),
    ],
    ids=["not-an-image", "truncated-png", "truncated-jpeg", "empty", "too-large", "1x1", "10000x10000", "unknown-model",
         "unknown-class", "bad-threshold", "bad-top-k", "negative-top-k", "zero-top-k", "huge-top-k", "unknown-method",
         "no-image", "unknown-image-id"],
)
def test_bad_input_gets_a_one_line_4xx_and_the_server_keeps_serving(client, make_upload, fields, status, message):
    response = explain(client, make_upload(), **fields)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert explain(client, png_bytes(random_image(20, 20, seed=7))).status_code == 200


def test_body_over_the_limit_is_cut_off_while_read_without_content_length(client):
    def chunks():  # a streamed body: no Content-Length to check up front
        for _ in range(100):
            yield b"x" * 10_000

    response = client.post("/api/explain", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and "over the 0.2 MB limit" in response.json()["error"]
    assert explain(client, png_bytes(random_image(20, 20, seed=7))).status_code == 200


def test_uploads_are_not_written_under_the_clients_name(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"file": ("../../evil.png", png_bytes(random_image(20, 20, seed=8)), "image/png")}
    result = client.post("/api/explain", files=files).json()
    assert len(result["image_id"]) == 32 and "evil" not in str(result)
    assert not (tmp_path.parent.parent / "evil.png").exists() and list(tmp_path.iterdir()) == []


def test_examples_are_served_and_explainable(client):
    examples = client.get("/api/examples").json()["examples"]
    assert len(examples) >= 3
    data = client.get(examples[0]["url"]).content
    assert explain(client, data).status_code == 200
    assert client.get("/api/examples/99").status_code == 404


def test_concurrent_misses_share_forward_passes():
    release, started = threading.Event(), threading.Event()
    sizes = []

    def run_batch(images):
        sizes.append(len(images))
        started.set()
        release.wait(5)
        return images.sum(axis=(1, 2, 3)), images * 2

    batcher = _Batcher(run_batch, max_batch=8)
    results = {}

    def ask(value):
        results[value] = batcher.run(np.full((2, 2, 1), value, np.float32))

    threads = [threading.Thread(target=ask, args=(0.0,))]
    threads[0].start()
    started.wait(5)  # the worker is busy with the first image; five more queue up meanwhile
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        threads.append(threading.Thread(target=ask, args=(value,)))
        threads[-1].start()
    while batcher._queue.qsize() < 5:
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join(5)
    batcher.close()
    assert sizes == [1, 5] and batcher.images == 6 and batcher.batches == 2
    for value, (total, maps) in results.items():
        assert total == pytest.approx(4 * value) and np.all(maps == 2 * value)


def test_create_app_rejects_bad_arguments(models):
    with pytest.raises(ValueError, match="at least one model"):
        create_app({})
    with pytest.raises(ValueError, match="max_upload_bytes must be a positive integer, got 0"):
        create_app(models, max_upload_bytes=0)
    with pytest.raises(ValueError, match="Examples folder '/no/such/folder' does not exist"):
        create_app(models, examples="/no/such/folder")


def test_cli_serve_arguments_and_errors(tmp_path, capsys):
    from mindgap.cli import _served_names, build_parser

    args = build_parser().parse_args(["serve", "a.keras"])
    assert (args.host, args.port, args.models) == ("127.0.0.1", 8000, ["a.keras"])
    assert _served_names(["runs/one/best.keras", "runs/two/best.keras", "x/plain.keras"]) == ["one/best", "two/best", "plain"]
    assert main(["serve", str(tmp_path / "missing.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_serve_loads_the_models_and_starts_uvicorn_on_loopback(tmp_path, monkeypatch, capsys):
    import uvicorn

    folder = tmp_path / "run"
    folder.mkdir()
    mindgap.build_model("Tiny-GAP5", 3, input_shape=(24, 24, 3), class_names=["a", "b", "c"]).save(folder / "best.keras")
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    assert main(["serve", str(folder / "best.keras"), "--port", "8123", "--max-upload-mb", "1"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8123)
    viewer = started["app"].state.viewer
    assert list(viewer.models) == ["best"] and viewer.max_upload_bytes == 2**20
    assert "serving best on http://127.0.0.1:8123/" in capsys.readouterr().out
    (tmp_path / "text.keras").write_text("not a model")
    assert main(["serve", str(tmp_path / "text.keras")]) == 2
    assert "is not a .keras model file" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["cam", "gradcam", "eb", "ceb", "rise"])
def test_every_saliency_method_is_served_cached_and_timed(client, models, method):
    from mindgap import saliency
    from mindgap.saliency.scores import min_max
    from mindgap.serve.app import RISE_BATCH, RISE_MASKS

    rgb = random_image(40, 40, seed=11)
    first = explain(client, png_bytes(rgb), model="plain", class_name="owl", threshold=0.5, method=method).json()
    assert first["method"] == method and first["method_ms"] > 0 and "method=" + method in first["overlay_url"]
    # the same map as the library's, through the same preprocessing; its box found as in evaluation
    image = model_input(rgb, SIZE)[None]
    options = dict(num_masks=RISE_MASKS, batch_size=RISE_BATCH) if method == "rise" else {}
    expected = saliency.compute(models["plain"], image, [[CLASSES.index("owl")]], method=method, **options)[0, ..., 0]
    if method != "cam":
        expected = min_max(expected)
    box = cam_to_box(upsample_map(expected, (SIZE, SIZE)), 0.5)
    want = None if not box[2] > box[0] else [round(float(value) * 40 / SIZE, 1) for value in box]
    assert first["box"] == pytest.approx(want, abs=0.11)
    passes = forward_passes(client)
    again = explain(client, image_id=first["image_id"], model="plain", class_name="owl", threshold=0.2, method=method).json()
    assert again["ran_method"] is False and again["method_ms"] == first["method_ms"] and forward_passes(client) == passes
    picture = client.get(first["overlay_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == (40, 40)
    if method != "cam":
        assert first["ran_method"] is True
        cam = client.get(first["overlay_url"].replace("method=" + method, "method=cam")).content
        assert cam != picture.content  # another map drawn
        shared = client.get(first["overlay_url"] + "&scale=shared")
        assert shared.status_code == 422 and "needs method=cam" in shared.json()["error"]


def test_cam_png_rejects_an_unknown_method(client):
    image_id = explain(client, png_bytes(random_image(20, 20, seed=12))).json()["image_id"]
    response = client.get(f"/api/cam.png?image_id={image_id}&model=plain&method=lime")
    assert response.status_code == 422 and "Unknown method 'lime'" in response.json()["error"]


def test_model_list_names_the_methods(client):
    listing = client.get("/api/models").json()
    assert listing["methods"] == ["cam", "gradcam", "rise", "eb", "ceb"] and listing["rise_masks"] == 256
