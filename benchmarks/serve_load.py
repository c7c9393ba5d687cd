"""Load on the CAM viewer: latency, throughput, errors and memory of ``mindgap serve`` under concurrent clients.

Starts ``python -m mindgap serve`` in a subprocess on 127.0.0.1 with a quick
model (an untrained Tiny-GAP5 by default, or ``--model FILE``), then sends
``--requests`` requests from ``--clients`` concurrent clients, in two phases:

* **upload (cache miss)**: each request uploads a distinct image (a digits
  canvas, PNG), so the server decodes it and runs the model (concurrent misses
  share batched forward passes);
* **switch (cache hit)**: what the page does when the class or the threshold
  changes: ``/api/explain`` with the ``image_id`` of an uploaded image and a
  random class and threshold, then the overlay PNG it points to.  No model runs.

and a last, short phase of distinct uploads from one client at a time (no queueing).

It prints p50/p95 latency, requests per second and errors per phase, the p50
as a multiple of one bare ``model.predict`` of the same image (measured here
before the load, server idle), and the server's RSS at the start, middle and
end of each phase.

    flock /tmp/mindgap_heavy.lock python benchmarks/serve_load.py
"""

import argparse
import concurrent.futures
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402
import requests  # noqa: E402

from mindgap.data.digits import CLASS_NAMES  # noqa: E402
from mindgap.serve.examples import built_in_examples  # noqa: E402

HOST = "127.0.0.1"


def _free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _bare_predict_seconds(model_path, image_bytes, repeats):
    """Median seconds of one ``model.predict`` on one image (after a warm-up), and of one direct compiled call."""
    import keras
    import tensorflow as tf

    import mindgap  # noqa: F401 - registers the layers
    from mindgap.serve.images import decode_image, model_input

    model = keras.saving.load_model(model_path, compile=False)
    batch = model_input(decode_image(image_bytes), int(model.input.shape[1]))[None]
    model.predict(batch, verbose=0)
    predict = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(batch, verbose=0)
        predict.append(time.perf_counter() - start)
    compiled = tf.function(lambda images: model(images, training=False))
    compiled(batch)
    direct = []
    for _ in range(repeats):
        start = time.perf_counter()
        compiled(batch).numpy()
        direct.append(time.perf_counter() - start)
    return float(np.median(predict)), float(np.median(direct))


def _run_phase(jobs, clients):
    """Run ``jobs`` (callables taking a requests.Session) on ``clients`` threads; latencies in seconds and error count."""
    sessions = {}

    def timed(job):
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        start = time.perf_counter()
        try:
            ok = job(session)
        except requests.RequestException:
            ok = False
        return time.perf_counter() - start, ok

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(timed, jobs))
    wall = time.perf_counter() - start
    latencies = np.array([latency for latency, _ in results])
    return latencies, sum(not ok for _, ok in results), wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a .keras file saved by mindgap (default: an untrained Tiny-GAP5)")
    parser.add_argument("--image-size", type=int, default=96, help="input size of the default model")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30, help="bare predict calls timed for the baseline")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mindgap_serve_load_") as folder:
        model_path = args.model
        if model_path is None:
            import mindgap

            model_path = os.path.join(folder, "tiny.keras")
            mindgap.build_model("Tiny-GAP5", 10, input_shape=(args.image_size, args.image_size, 3), class_names=list(CLASS_NAMES)).save(model_path)
        images = [data for _, data in built_in_examples(count=args.requests + 1, seed=11)]
        predict_seconds, direct_seconds = _bare_predict_seconds(model_path, images[0], args.repeats)

        port = _free_port()
        url = f"http://{HOST}:{port}"
        server = subprocess.Popen([sys.executable, "-m", "mindgap", "serve", model_path, "--host", HOST, "--port", str(port)],
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH")]))},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    requests.get(url + "/api/models", timeout=2).raise_for_status()
                    break
                except requests.RequestException:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-500:]}")
                    time.sleep(0.3)
            process = psutil.Process(server.pid)

            def rss():
                return process.memory_info().rss / 2**20

            # warm-up outside the measurement: the compiled graph traces once, the examples are built
            warm = requests.post(url + "/api/explain", files={"file": ("warm.png", images[0], "image/png")}).json()
            requests.get(url + warm["overlay_url"]).raise_for_status()
            rows = []
            memory = {}

            uploaded, failures = [], []

            def record_ids(image):
                def job(session):
                    response = session.post(url + "/api/explain", files={"file": ("image.png", image, "image/png")}, timeout=60)
                    if response.status_code == 200:
                        uploaded.append(response.json()["image_id"])
                    else:
                        failures.append(response.text[:200])
                    return response.status_code == 200

                return job

            half = args.requests // 2
            memory["upload"] = [rss()]
            first, errors_a, wall_a = _run_phase([record_ids(image) for image in images[1:half + 1]], args.clients)
            memory["upload"].append(rss())
            second, errors_b, wall_b = _run_phase([record_ids(image) for image in images[half + 1:]], args.clients)
            memory["upload"].append(rss())
            rows.append(("upload (cache miss)", np.concatenate([first, second]), errors_a + errors_b, wall_a + wall_b))

            recent = uploaded[-8:]  # among the last uploads, so still in the cache (32 images)
            rng = random.Random(0)

            def switch(image_id, class_name, threshold):
                def job(session):
                    response = session.post(url + "/api/explain", data={"image_id": image_id, "class_name": class_name, "threshold": threshold}, timeout=60)
                    if response.status_code == 200:
                        response = session.get(url + response.json()["overlay_url"], timeout=60)
                    if response.status_code != 200:
                        failures.append(response.text[:200])
                    return response.status_code == 200

                return job

            stats_before = requests.get(url + "/api/stats").json()
            jobs = [switch(rng.choice(recent), rng.choice(CLASS_NAMES), round(rng.uniform(0.05, 0.9), 2)) for _ in range(args.requests)]
            memory["switch"] = [rss()]
            first, errors_a, wall_a = _run_phase(jobs[:half], args.clients)
            memory["switch"].append(rss())
            second, errors_b, wall_b = _run_phase(jobs[half:], args.clients)
            memory["switch"].append(rss())
            stats_after = requests.get(url + "/api/stats").json()
            rows.append(("switch (cache hit)", np.concatenate([first, second]), errors_a + errors_b, wall_a + wall_b))

            # one client at a time: the cost of one request without queueing behind the others
            fresh = [data for _, data in built_in_examples(count=args.requests // 4, seed=12)]
            memory["upload, 1 client"] = [rss()]
            first, errors_a, wall_a = _run_phase([record_ids(image) for image in fresh[: len(fresh) // 2]], 1)
            memory["upload, 1 client"].append(rss())
            second, errors_b, wall_b = _run_phase([record_ids(image) for image in fresh[len(fresh) // 2:]], 1)
            memory["upload, 1 client"].append(rss())
            rows.append(("upload (cache miss), 1 client", np.concatenate([first, second]), errors_a + errors_b, wall_a + wall_b))
        finally:
            server.terminate()
            server.wait(30)

    print(f"model: {os.path.basename(model_path)}, {args.requests} requests per phase, {args.clients} concurrent clients, loopback {HOST}")
    print(f"bare model.predict of one image: {1000 * predict_seconds:.1f} ms (a direct compiled call: {1000 * direct_seconds:.1f} ms)")
    print("| phase | p50 ms | p95 ms | req/s | errors | p50 / bare predict | p50 / compiled call | RSS MB start / middle / end |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, latencies, errors, wall), key in zip(rows, ("upload", "switch", "upload, 1 client")):
        p50, p95 = np.percentile(latencies, [50, 95])
        start, middle, end = memory[key]
        print(f"| {name} | {1000 * p50:.1f} | {1000 * p95:.1f} | {len(latencies) / wall:.1f} | {errors} | {p50 / predict_seconds:.2f}× | "
              f"{p50 / direct_seconds:.2f}× | {start:.0f} / {middle:.0f} / {end:.0f} |")
    print(f"forward passes during the switch phase: {stats_after['forward_passes'] - stats_before['forward_passes']}; "
          f"upload phase: {stats_before['forward_passes'] - 1} images in {stats_before['batches'] - 1} batches")
    if failures:
        print(f"first error: {failures[0]}")


if __name__ == "__main__":
    main()
