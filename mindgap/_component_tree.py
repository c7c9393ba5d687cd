"""One pass over a CAM's pixels for every threshold at once (private; used by ``mindgap.metrics``).

The pixels kept at a threshold contain those kept at any higher threshold, so the 8-connected components of all
thresholds form a tree.  This module adds the pixels level by level, from the highest threshold down, merging
components with a union-find and keeping, for each component: its pixel count, its box, the first 2x2 block it touches
in raster order (OpenCV's label order, used to break ties between equal largest components), twice the area of the
polygon through its border pixels' centres computed from 2x2 cells (``cv2.contourArea`` of its outer contour when it
has no hole), and four times its Euler number (Gray's bit quads: no hole when it is 4).

Holes have contours too (Choe et al.'s ``cv2.RETR_TREE``): at levels where a component has one, a second pass merges
the background's 4-connected components level by level upwards, and the boxes of those that do not reach the border,
grown by one pixel, join the all-contours candidates.

Where the largest contour is not decided by these numbers (a component with a hole that may be the largest, ties in
contour area and box area), the level is flagged and the caller runs the per-threshold OpenCV code for that level
only.  So the results are those of the per-threshold code, pixel for pixel.

Everything here is compiled with numba and releases the GIL.
"""

import numba
import numpy as np

# The 8 neighbours, in the bit order of a neighbourhood pattern.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _cell_tables():
    """For each pattern of the 8 neighbours already in the mask, the change of (2 x polygon area, 4 x Euler number)
    summed over the four 2x2 cells that gain the centre pixel.  Per cell: 4 pixels on -> (2, 0), 3 -> (1, -1), 1 ->
    (0, 1), 2 on a diagonal -> (0, -2), else (0, 0) (Gray's bit quads for 8-connectivity, and the polygon through the
    border pixels' centres)."""

    def values(count, diagonal):
        return {4: (2, 0), 3: (1, -1), 1: (0, 1)}.get(count, (0, -2) if count == 2 and diagonal else (0, 0))

    polygon = np.zeros(256, np.int64)
    euler = np.zeros(256, np.int64)
    for pattern in range(256):
        on = {offset for bit, offset in enumerate(_NEIGHBOURS) if pattern >> bit & 1}
        for cy in (-1, 0):
            for cx in (-1, 0):
                row, column = 2 * cy + 1, 2 * cx + 1
                beside_a, beside_b, opposite = (row, 0) in on, (0, column) in on, (row, column) in on
                before = beside_a + beside_b + opposite
                old = values(before, beside_a and beside_b)
                new = values(before + 1, opposite and not beside_a and not beside_b)
                polygon[pattern] += new[0] - old[0]
                euler[pattern] += new[1] - old[1]
    return polygon, euler


_POLYGON_DELTA, _EULER_DELTA = _cell_tables()


def _run_starts():
    """For each neighbour pattern, one neighbour per run of consecutive neighbours around the ring.

    Two neighbours next to each other on the ring are 8-adjacent, so already
    in one component: one look-up per run is enough (at most 4 runs).
    """
    ring = (0, 1, 2, 4, 7, 6, 5, 3)  # NW, N, NE, E, SE, S, SW, W as bits of _NEIGHBOURS
    starts = np.full((256, 4), -1, np.int64)
    for pattern in range(256):
        on = [bool(pattern >> bit & 1) for bit in ring]
        runs = [ring[i] for i in range(8) if on[i] and not on[i - 1]]
        if all(on):
            runs = [ring[0]]
        starts[pattern, : len(runs)] = runs
    return starts


_RUN_STARTS = _run_starts()
_NEIGHBOUR_DY = np.array([offset[0] for offset in _NEIGHBOURS], np.int64)
_NEIGHBOUR_DX = np.array([offset[1] for offset in _NEIGHBOURS], np.int64)


@numba.njit(cache=True, nogil=True)
def _levels(normalized, thresholds, uniform):
    """Per pixel, the number of (ascending) thresholds t with t <= value; 0 where value <= 0.

    Returned flat on the grid padded by one pixel (-1 on the padding), so neighbours need no bounds checks.

    With ``uniform`` (evenly spaced thresholds) a guess from the spacing is
    corrected by comparisons, so the count is exact either way.
    """
    height, width = normalized.shape
    count = thresholds.shape[0]
    padded_width = width + 2
    levels = np.full((height + 2) * padded_width, -1, np.int32)  # a border of -1: never in the mask
    first = thresholds[0]
    step = (thresholds[count - 1] - first) / (count - 1) if count > 1 else 1.0
    uniform = uniform and step > 0
    inverse_step = 1.0 / step if uniform else 0.0
    for y in range(height):
        for x in range(width):
            value = np.float64(normalized[y, x])
            if not value > 0:
                levels[(y + 1) * padded_width + x + 1] = 0
                continue
            if uniform:
                guess = (value - first) * inverse_step + 1.0
                low = 0 if guess < 0 else (count if guess > count else int(guess))
                while low < count and thresholds[low] <= value:
                    low += 1
                while low > 0 and thresholds[low - 1] > value:
                    low -= 1
            else:
                low, high = 0, count
                while low < high:
                    middle = (low + high) >> 1
                    if thresholds[middle] <= value:
                        low = middle + 1
                    else:
                        high = middle
            levels[(y + 1) * padded_width + x + 1] = low
    return levels


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent, node):
    while parent[node] != node:
        parent[node] = parent[parent[node]]
        node = parent[node]
    return node


@numba.njit(cache=True, nogil=True, inline="always")
def _sort_by_level(levels, height, width, count, descending):
    """Counting sort of the pixels by level, raster order inside a level, packed as (y << 32) | x.

    Descending: levels count..1 (pixels at level 0 left out); else ascending, levels 0..count.
    Returns (order, offsets, sizes): level ``l``'s pixels are order[offsets[l]:offsets[l] + sizes[l]].
    """
    padded_width = width + 2
    sizes = np.zeros(count + 2, np.int64)
    for y in range(height):
        for pixel in range((y + 1) * padded_width + 1, (y + 1) * padded_width + 1 + width):
            sizes[levels[pixel]] += 1
    offsets = np.zeros(count + 2, np.int64)
    position = 0
    for step in range(count + (0 if descending else 1)):
        level = count - step if descending else step
        offsets[level] = position
        position += sizes[level]
    order = np.empty(position, np.int64)
    fill = offsets.copy()
    for y in range(height):
        for x in range(width):
            level = levels[(y + 1) * padded_width + x + 1]
            if level > 0 or not descending:
                order[fill[level]] = (y << 32) | x
                fill[level] += 1
    return order, offsets, sizes


@numba.njit(cache=True, nogil=True, inline="always")
def _components(size):
    """Per pixel (padded index): union-find parent, then area and box, meaningful at roots only."""
    return (np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64),
            np.empty(size, np.int64), np.empty(size, np.int64))


@numba.njit(cache=True, nogil=True, inline="always")
def _union(parent, area, x_min, y_min, x_max, y_max, root, other):
    """Join component ``other`` into ``root`` (the larger one stays the root); returns (root, other)."""
    if area[root] < area[other]:
        root, other = other, root
    parent[other] = root
    area[root] += area[other]
    x_min[root] = min(x_min[root], x_min[other])
    y_min[root] = min(y_min[root], y_min[other])
    x_max[root] = max(x_max[root], x_max[other])
    y_max[root] = max(y_max[root], y_max[other])
    return root, other


@numba.njit(cache=True, nogil=True, inline="always")
def _add_pixel(parent, area, x_min, y_min, x_max, y_max, root, pixel, x, y):
    """Add the pixel to component ``root``, or start one (``root`` < 0); returns the pixel's root."""
    if root < 0:
        parent[pixel] = pixel
        area[pixel] = 1
        x_min[pixel] = x
        y_min[pixel] = y
        x_max[pixel] = x + 1
        y_max[pixel] = y + 1
        return pixel
    parent[pixel] = root
    area[root] += 1
    x_min[root] = min(x_min[root], x)
    y_min[root] = min(y_min[root], y)
    x_max[root] = max(x_max[root], x + 1)
    y_max[root] = max(y_max[root], y + 1)
    return root


@numba.njit(cache=True, nogil=True, inline="always")
def _keep_roots(parent, roots, root_count):
    """Drop the components merged into others from ``roots``; returns how many remain."""
    kept = 0
    for slot in range(root_count):
        node = roots[slot]
        if parent[node] == node:
            roots[kept] = node
            kept += 1
    return kept


@numba.njit(cache=True, nogil=True)
def _best_iou(x0, y0, x1, y1, gt_boxes, gt_areas):
    """Highest IoU of the box with any ground-truth box, in the operations of ``metrics.box_iou``."""
    best = 0.0
    box_area = np.float64((x1 - x0) * (y1 - y0))
    for g in range(gt_boxes.shape[0]):
        w = min(np.float64(x1), gt_boxes[g, 2]) - max(np.float64(x0), gt_boxes[g, 0])
        h = min(np.float64(y1), gt_boxes[g, 3]) - max(np.float64(y0), gt_boxes[g, 1])
        if w < 0:
            w = 0.0
        if h < 0:
            h = 0.0
        intersection = w * h
        union = box_area + gt_areas[g] - intersection
        iou = intersection / union if union > 0 else 0.0
        if iou > best:
            best = iou
    return best


@numba.njit(cache=True, nogil=True)
def _hole_ious(levels, height, width, count, wanted, gt_boxes, gt_areas):
    """Per threshold, the best IoU of a hole's contour box, where ``wanted``.

    The background (pixels not kept) grows with the threshold, so its 4-connected components are merged level by level
    upwards.  A hole is one that does not reach the image border; the contour ``cv2.findContours`` traces around it
    runs on the pixels just outside it, so its box is the hole's box grown by one pixel on every side.
    """
    padded_width = width + 2
    size = (height + 2) * padded_width
    order, offsets, sizes = _sort_by_level(levels, height, width, count, False)

    parent, area, x_min, y_min, x_max, y_max = _components(size)
    border = np.empty(size, np.bool_)
    roots = np.empty(order.shape[0] + 1, np.int64)
    root_count = 0
    neighbour_offsets = np.array([-padded_width, -1, 1, padded_width], np.int64)  # N, W (before), E, S (after)
    ious = np.zeros(count, np.float64)
    last_wanted = -1
    for index in range(count):
        if wanted[index]:
            last_wanted = index
    # background at thresholds[index]: the pixels of level <= index
    for index in range(last_wanted + 1):
        for slot in range(offsets[index], offsets[index] + sizes[index]):
            y = order[slot] >> 32
            x = order[slot] & 0xFFFFFFFF
            pixel = (y + 1) * padded_width + x + 1
            root = -1
            touches = False
            for bit in range(4):
                neighbour = pixel + neighbour_offsets[bit]
                neighbour_level = levels[neighbour]
                if neighbour_level < 0:
                    touches = True
                    continue
                if neighbour_level < index or (neighbour_level == index and bit < 2):
                    other = _find(parent, neighbour)
                    if root < 0:
                        root = other
                    elif other != root:
                        root, other = _union(parent, area, x_min, y_min, x_max, y_max, root, other)
                        border[root] = border[root] or border[other]
            if root < 0:
                border[pixel] = False
                roots[root_count] = pixel
                root_count += 1
            root = _add_pixel(parent, area, x_min, y_min, x_max, y_max, root, pixel, x, y)
            border[root] = border[root] or touches
        root_count = _keep_roots(parent, roots, root_count)
        if wanted[index]:
            best = 0.0
            for slot in range(root_count):
                node = roots[slot]
                if not border[node]:
                    best = max(best, _best_iou(x_min[node] - 1, y_min[node] - 1, x_max[node] + 1, y_max[node] + 1,
                                               gt_boxes, gt_areas))
            ious[index] = best
    return ious


@numba.njit(cache=True, nogil=True)
def sweep(normalized, thresholds, gt_boxes, uniform=False):
    """Boxes and flags for every threshold of one normalized CAM.

    Args:
        normalized: (h, w) float32 map (positive part over its maximum).
        thresholds: (T,) float64, ascending.
        gt_boxes: (G, 4) float64; with G = 0 the all-contours IoU is skipped.
        uniform: the thresholds are evenly spaced (a faster count of the
            thresholds below each pixel; exact either way).

    Returns:
        component_boxes (T, 4) int64: box of the largest 8-connected component
            (ties: OpenCV's label order), zeros when nothing is kept.
        contour_boxes (T, 4) int64 and contour_sure (T,) bool: box of the
            largest contour, valid where ``contour_sure``.
        contour_ious (T,) float64 and contour_ious_sure (T,) bool: best IoU of any contour's box (components and
            holes) with any ground-truth box, valid where ``contour_ious_sure`` (always, today).
    """
    height, width = normalized.shape
    padded_width = width + 2
    size = (height + 2) * padded_width
    count = thresholds.shape[0]
    block_width = (width + 1) // 2
    levels = _levels(normalized, thresholds, uniform)

    order, offsets, sizes = _sort_by_level(levels, height, width, count, True)

    # per pixel (padded index); the statistics are only meaningful at roots
    parent, area, x_min, y_min, x_max, y_max = _components(size)
    block = np.empty(size, np.int64)
    polygon2 = np.empty(size, np.int64)
    euler4 = np.empty(size, np.int64)
    roots = np.empty(order.shape[0] + 1, np.int64)
    root_count = 0
    neighbour_offsets = _NEIGHBOUR_DY * padded_width + _NEIGHBOUR_DX
    polygon_delta, euler_delta = _POLYGON_DELTA, _EULER_DELTA
    run_starts = _RUN_STARTS

    component_boxes = np.zeros((count, 4), np.int64)
    contour_boxes = np.zeros((count, 4), np.int64)
    contour_sure = np.ones(count, np.bool_)
    contour_ious = np.zeros(count, np.float64)
    contour_ious_sure = np.ones(count, np.bool_)
    holes_at = np.zeros(count, np.bool_)
    gt_count = gt_boxes.shape[0]
    gt_areas = np.empty(gt_count, np.float64)
    for g in range(gt_count):
        gt_areas[g] = max(gt_boxes[g, 2] - gt_boxes[g, 0], 0.0) * max(gt_boxes[g, 3] - gt_boxes[g, 1], 0.0)

    for level in range(count, 0, -1):
        index = level - 1  # the state after this level's pixels is the mask at thresholds[index]
        first, last = offsets[level], offsets[level] + sizes[level]
        if first == last:
            if level < count:
                component_boxes[index] = component_boxes[index + 1]
                contour_boxes[index] = contour_boxes[index + 1]
                contour_sure[index] = contour_sure[index + 1]
                contour_ious[index] = contour_ious[index + 1]
                contour_ious_sure[index] = contour_ious_sure[index + 1]
                holes_at[index] = holes_at[index + 1]
            continue
        for slot in range(first, last):
            y = order[slot] >> 32
            x = order[slot] & 0xFFFFFFFF
            pixel = (y + 1) * padded_width + x + 1
            # join the components of the neighbours already in the mask; ``pattern`` says which they are
            pattern = 0
            for bit in range(4):  # neighbours before the pixel in raster order: in the mask from this level on
                pattern |= np.int64(levels[pixel + neighbour_offsets[bit]] >= level) << bit
            for bit in range(4, 8):  # after it: only from a higher level
                pattern |= np.int64(levels[pixel + neighbour_offsets[bit]] > level) << bit
            root = -1
            for run in range(4):
                bit = run_starts[pattern, run]
                if bit < 0:
                    break
                other = _find(parent, pixel + neighbour_offsets[bit])
                if root < 0:
                    root = other
                elif other != root:
                    root, other = _union(parent, area, x_min, y_min, x_max, y_max, root, other)
                    block[root] = min(block[root], block[other])
                    polygon2[root] += polygon2[other]
                    euler4[root] += euler4[other]
            if root < 0:  # a new component
                block[pixel] = (y >> 1) * block_width + (x >> 1)
                polygon2[pixel] = 0
                euler4[pixel] = 0
                roots[root_count] = pixel
                root_count += 1
            root = _add_pixel(parent, area, x_min, y_min, x_max, y_max, root, pixel, x, y)
            block[root] = min(block[root], (y >> 1) * block_width + (x >> 1))
            polygon2[root] += polygon_delta[pattern]
            euler4[root] += euler_delta[pattern]

        root_count = _keep_roots(parent, roots, root_count)  # only the components that are still roots

        # largest component: most pixels, then OpenCV's label order (first 2x2 block)
        best = roots[0]
        for slot in range(1, root_count):
            node = roots[slot]
            if area[node] > area[best] or (area[node] == area[best] and block[node] < block[best]):
                best = node
        component_boxes[index, 0] = x_min[best]
        component_boxes[index, 1] = y_min[best]
        component_boxes[index, 2] = x_max[best]
        component_boxes[index, 3] = y_max[best]

        # largest contour: by (contour area, box area); exact for components without holes,
        # bounded by the polygon of its own cells and by its box for the others
        best = roots[0]
        for slot in range(1, root_count):
            node = roots[slot]
            box_node = (x_max[node] - x_min[node]) * (y_max[node] - y_min[node])
            box_best = (x_max[best] - x_min[best]) * (y_max[best] - y_min[best])
            if polygon2[node] > polygon2[best] or (polygon2[node] == polygon2[best] and box_node > box_best):
                best = node
        lower = polygon2[best]
        box_best = (x_max[best] - x_min[best]) * (y_max[best] - y_min[best])
        sure = True
        for slot in range(root_count):
            node = roots[slot]
            if node == best:
                continue
            if euler4[node] == 4:
                upper = polygon2[node]
            else:
                upper = 2 * (x_max[node] - x_min[node] - 1) * (y_max[node] - y_min[node] - 1)
            box_node = (x_max[node] - x_min[node]) * (y_max[node] - y_min[node])
            if not (upper < lower or (upper == lower and box_node < box_best)):
                sure = False
                break
        contour_sure[index] = sure
        contour_boxes[index, 0] = x_min[best]
        contour_boxes[index, 1] = y_min[best]
        contour_boxes[index, 2] = x_max[best]
        contour_boxes[index, 3] = y_max[best]

        # all contours: every component's outer contour (its box) and, at levels with holes, every hole's
        if gt_count > 0:
            best_iou = 0.0
            for slot in range(root_count):
                node = roots[slot]
                if euler4[node] != 4:
                    holes_at[index] = True
                best_iou = max(best_iou, _best_iou(x_min[node], y_min[node], x_max[node], y_max[node],
                                                   gt_boxes, gt_areas))
            contour_ious[index] = best_iou
    if gt_count > 0 and holes_at.any():
        hole_ious = _hole_ious(levels, height, width, count, holes_at, gt_boxes, gt_areas)
        for index in range(count):
            contour_ious[index] = max(contour_ious[index], hole_ious[index])
    return component_boxes, contour_boxes, contour_sure, contour_ious, contour_ious_sure
