"""Localization metrics speed: 2,000 CAMs of 299² against 101 thresholds, before and after.

    flock /tmp/mindgap_heavy.lock python benchmarks/metrics_speed.py [--images 2000] [--workers 2] [--reference-images N]

For Zhou's largest component, the largest contour (MaxBoxAcc) and all
contours (MaxBoxAccV2) over every threshold, prints side by side the time of
the per-threshold reference (one OpenCV labelling per threshold, the code
before the one-pass sweep) and of the one-pass sweep, each serial and on
``--workers`` threads, and checks that the four give identical IoUs.
``--reference-images N`` times the reference on the first N images only (it
takes minutes on 2,000); its 2,000-image time is then shown as N's time
scaled, marked "~", and the identity is checked on those N.  Then
the paper's box, centre of mass and the pointing game.  The synthetic CAMs
hold two Gaussian blobs each (``--kind blobs``) or are bilinear upsamplings
of random 17x17 maps, many components and holes (``--kind upsampled``).
"""

import argparse
import os
import time

import cv2
import numpy as np

from mindgap import metrics


def synthetic_cams(count, size=299, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    cams = np.empty((count, size, size), np.float32)
    boxes = []
    for index in range(count):
        centres = rng.uniform(40, size - 40, (2, 2))
        widths = rng.uniform(10, 40, 2)
        cams[index] = sum(np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * w**2)) * weight
                          for (cx, cy), w, weight in zip(centres, widths, (1.0, 0.6)))
        cx, cy = centres[0]
        boxes.append(np.array([[cx - 40, cy - 40, cx + 40, cy + 40]]))
    return cams, boxes


def upsampled_cams(count, size=299, seed=0):
    rng = np.random.default_rng(seed)
    cams = np.stack([cv2.resize(rng.random((17, 17)).astype(np.float32) ** 3, (size, size), interpolation=cv2.INTER_LINEAR)
                     for _ in range(count)])
    corners = rng.uniform(0, size / 2, (count, 2))
    sides = rng.uniform(40, size / 2, (count, 2))
    boxes = [np.array([[x, y, x + w, y + h]]) for (x, y), (w, h) in zip(corners, sides)]
    return cams, boxes


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--kind", choices=("blobs", "upsampled"), default="blobs")
    parser.add_argument("--reference-images", type=int, default=None)
    args = parser.parse_args()
    reference_count = min(args.reference_images or args.images, args.images)
    scale = args.images / reference_count
    thresholds = np.linspace(0, 1, 101)
    cams, boxes = (synthetic_cams if args.kind == "blobs" else upsampled_cams)(args.images)
    metrics._warm_up()  # numba compiles (or loads its cache) once, outside the timings
    print(f"{args.images} CAMs of 299x299 ({args.kind}), {len(thresholds)} thresholds, "
          f"{args.workers} workers, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads")
    if reference_count < args.images:
        print(f"reference timed on the first {reference_count} images; '~' marks its time scaled to {args.images}")
    subset = {True: slice(0, reference_count), False: slice(None)}
    measures = {
        "Zhou largest component": lambda workers, reference: metrics._iou_rows(
            cams[subset[reference]], boxes[subset[reference]], thresholds, "largest_component", workers, reference),
        "MaxBoxAcc (largest contour)": lambda workers, reference: metrics._iou_rows(
            cams[subset[reference]], boxes[subset[reference]], thresholds, "largest_contour", workers, reference),
        "MaxBoxAccV2 (all contours)": lambda workers, reference: metrics._all_contours_rows(
            cams[subset[reference]], boxes[subset[reference]], thresholds, workers, reference),
    }
    header = (f"| measure | reference, 1 core | reference, {args.workers} workers | sweep, 1 core | "
              f"sweep, {args.workers} workers | speed-up (1 core) | identical |")
    print(header)
    print("|" + "---|" * 7)
    for name, run in measures.items():
        results, seconds = {}, {}
        for reference in (True, False):
            for workers in (1, args.workers):
                results[reference, workers], seconds[reference, workers] = timed(lambda: run(workers, reference))
        expected = results[True, 1]
        identical = (all(np.array_equal(expected, result[:reference_count]) for result in results.values())
                     and np.array_equal(results[False, 1], results[False, args.workers]))
        mark = "~" if scale > 1 else ""
        reference_1, reference_n = seconds[True, 1] * scale, seconds[True, args.workers] * scale
        print(f"| {name} | {mark}{reference_1:.2f} s | {mark}{reference_n:.2f} s | {seconds[False, 1]:.2f} s | "
              f"{seconds[False, args.workers]:.2f} s | {reference_1 / seconds[False, 1]:.1f}x | "
              f"{'yes' if identical else 'NO'} |", flush=True)
        if not identical:
            raise SystemExit(f"{name}: the sweep differs from the per-threshold reference.")
    for name, function in [
        ("paper box, IoU curve (Figure 4)", lambda: metrics.max_box_acc(cams, boxes, thresholds, workers=args.workers)),
        ("centre of mass hits", lambda: [metrics.center_of_mass_hit(cam, box) for cam, box in zip(cams, boxes)]),
        ("pointing game hits", lambda: [metrics.pointing_game_hit(cam, box) for cam, box in zip(cams, boxes)]),
    ]:
        _, seconds = timed(function)
        print(f"{name:40s} {seconds:7.2f} s")


if __name__ == "__main__":
    main()
