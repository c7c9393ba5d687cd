"""Localization metrics speed: 2,000 CAMs of 299² against 101 thresholds.

    python benchmarks/metrics_speed.py [--images 2000]

Times the paper's box (Figure 4 curve), Zhou's largest component, the largest
contour and Choe et al.'s all-contours sweep, plus centre of mass and the
pointing game, each over the same synthetic CAMs (two blobs each).
"""

import argparse
import time

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


def timed(label, function, count):
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    print(f"{label:45s} {seconds:7.2f} s  ({1000 * seconds / count:.2f} ms / image)")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    thresholds = np.linspace(0, 1, 101)
    cams, boxes = synthetic_cams(args.images)
    print(f"{args.images} CAMs of 299x299, {len(thresholds)} thresholds")
    curve = timed("paper box, IoU curve (Figure 4)", lambda: metrics.max_box_acc(cams, boxes, thresholds), args.images)
    timed("Zhou largest component, 101 thresholds", lambda: metrics.max_box_acc(cams, boxes, thresholds, method="largest_component"), args.images)
    timed("largest contour, 101 thresholds", lambda: metrics.max_box_acc(cams, boxes, thresholds, method="largest_contour"), args.images)
    timed("MaxBoxAccV2 (all contours, IoU .3/.5/.7)", lambda: metrics.max_box_acc_v2(cams, boxes, thresholds), args.images)
    timed("centre of mass hits", lambda: [metrics.center_of_mass_hit(cam, box) for cam, box in zip(cams, boxes)], args.images)
    timed("pointing game hits", lambda: [metrics.pointing_game_hit(cam, box) for cam, box in zip(cams, boxes)], args.images)
    print(f"(sanity: MaxBoxAcc of the paper's box = {100 * curve['value']:.1f} % at threshold {curve['threshold']:.2f})")


if __name__ == "__main__":
    main()
