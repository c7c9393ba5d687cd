"""Caption grounding (thesis §7.5, Table 7.5): the pointing game per noun phrase, and the cost per map.

    python -m experiments.caption_grounding                 # quick mode: the embedded captioned set
    python -m experiments.caption_grounding --extra-small   # seconds (tests)
    python -m experiments.caption_grounding --data-dir F30K # Flickr30kEntities (Sentences/, Annotations/, images)

1. the captioned set (``mindgap.data.captions``, Flickr30kEntities' layout) and a
   ``Tiny-Captioner`` trained on it (``mindgap.training.captioner``; reused when its run
   folder holds one of the same settings);
2. caption quality on the test images: BLEU-4 (by hand, ``mindgap.captioning.bleu``) and
   exact match of the greedy caption against the image's captions;
3. **Table 7.5**: each test caption is fed (teacher forcing, as Ramanishka et al. and the
   thesis do), each noun phrase's head noun (the digit's name; Flickr30kEntities' phrases have
   several words, we take the last, which in this grammar is the noun) is grounded at the step
   where it is predicted, the map is upsampled to the image and its maximum must fall inside the
   phrase's box (no tolerance: "whether the maximum point in a saliency map is inside the
   annotated bounding box"; beside it Zhang et al.'s 15 px scaled to the input, 4.3 px).  Methods:
   cEB-R and EB-R (authors' LSTM rule, and cEB-R by the conserving rule) at
   ``saliency.caption.WORD_LAYER`` (the Tiny backbone's 16 × 16 block) and cEB-R at the backbone's
   8 × 8 output, Caption-Guided Saliency at the backbone's 8 × 8 cells (the paper's m = 64) and at
   the 16 × 16 block (m = 256), the centre and the uniformly random point (closed form,
   ``mindgap.metrics``); and the *word-independent* map: the same caption's map of another phrase's
   noun, pointed at this phrase's box (a map that does not move with the word scores as high as the
   word's own); and the captioner's teacher-forced head-noun accuracy;
4. the same with the model's own greedy captions (the thesis: "our method can better highlight
   evidence using generated captions"): generated phrases whose digit is in the image;
5. cost per map at batch 1 against one forward pass of the captioner (best of 5, ms);
6. figure: per-word cEB-R maps with the phrase boxes on test images;
7. Figure 7.7 in miniature: a clip where a second digit enters half-way, the image captioner's weights in a
   ``Tiny-Captioner-Clips`` (mean pooling over frames), both nouns grounded per frame, and the second noun
   localized in time by §7.2's steps (anchor at the highest frame sum, grown until a negative sum).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import mindgap  # noqa: F401  (first: TensorFlow without its start-up chatter)

import numpy as np  # noqa: E402

from mindgap import captioning, metrics  # noqa: E402
from mindgap.cam import upsample_cams  # noqa: E402
from mindgap.data import captions as caption_set  # noqa: E402
from mindgap.data.flickr30k import read_flickr30k_entities  # noqa: E402
from mindgap.saliency import caption as word_saliency  # noqa: E402
from mindgap.training.captioner import CaptionerConfig, trained_captioner  # noqa: E402

THESIS_TABLE_7_5 = {"random": 0.268, "centre": 0.492, "caption_guided": 0.501, "word_ceb_r": 0.512}
METHOD_LABELS = {"random": "Baseline random", "centre": "Baseline center",
                 "caption_guided": "Caption-Guided Saliency (8 × 8 cells, their m = 64)",
                 "word_ceb_r": "cEB-R (ours; at tiny_block2, 16 × 16)", "word_eb_r": "EB-R (tiny_block2)",
                 "word_ceb_r:conserving": "cEB-R, conserving rule (tiny_block2)",
                 "word_independent": "cEB-R of another word of the caption (tiny_block2)",
                 "word_ceb_r:backbone": "cEB-R at the backbone's output (8 × 8)",
                 "caption_guided:tiny_block2": "Caption-Guided Saliency at tiny_block2 (m = 256)"}
# the maps of Table 7.5: {row: (method, options)}; EB-R / cEB-R stop at saliency.caption.WORD_LAYER by default
MAPS = {"word_ceb_r": ("word_ceb_r", {}), "word_eb_r": ("word_eb_r", {}),
        "word_ceb_r:conserving": ("word_ceb_r", {"rule": "conserving"}), "caption_guided": ("caption_guided", {}),
        "word_ceb_r:backbone": ("word_ceb_r", {"layer": "backbone"}),
        "caption_guided:tiny_block2": ("caption_guided", {"layer": word_saliency.WORD_LAYER})}
# "inside the annotated bounding box" (thesis §7.5, Ramanishka et al.): no tolerance; beside it Zhang et al.'s 15 px
# scaled to the 64 px input (15 · 64 / 224 = 4.3 px, mindgap.metrics' default)
TOLERANCES = (0, "scaled")


@dataclasses.dataclass
class Settings:
    name: str
    data: dict
    train: dict
    figure_images: int = 4
    timing_repeats: int = 5


MODES = {
    "quick": Settings("quick", dict(train_images=3000, val_images=150, test_images=200),
                      dict(epochs=10, learning_rate=1e-3)),
    "extra-small": Settings("extra-small", dict(train_images=12, val_images=3, test_images=5),
                            dict(epochs=1, batch_size=8, fc_units=16, lstm_units=16, embedding_units=8),
                            figure_images=2, timing_repeats=2),
}


def _queries(records, vocabulary, length):
    """One row per (image, caption): fed ids, head-noun ids and steps (padded by repeating the first), boxes."""
    rows = []
    for index, record in enumerate(records):
        for text in record.captions:
            fed, _ = captioning.encode(text.words, vocabulary, length)
            phrases = [phrase for phrase in text.phrases if phrase.boxes]
            if not phrases:
                continue
            steps = [phrase.last_word for phrase in phrases]
            ids = [vocabulary.index(phrase.words[-1].lower()) if phrase.words[-1].lower() in vocabulary
                   else captioning.UNKNOWN for phrase in phrases]
            rows.append(dict(image=index, fed=fed, steps=steps, ids=ids, boxes=[phrase.boxes for phrase in phrases],
                             words=[phrase.words[-1] for phrase in phrases]))
    return rows


def _padded(rows, key, width):
    return np.array([row[key] + [row[key][0]] * (width - len(row[key])) for row in rows], np.int32)


def _maps(model, images, rows, method, batch_size=16, **options):
    """Upsampled maps (rows, H, W, width) of every row's head nouns."""
    width = max(len(row["ids"]) for row in rows)
    fed = np.stack([row["fed"] for row in rows])
    ids, steps = _padded(rows, "ids", width), _padded(rows, "steps", width)
    chosen = images[[row["image"] for row in rows]]
    parts = [word_saliency.compute(model, chosen[start:start + batch_size], ids[start:start + batch_size], method,
                                   words=fed[start:start + batch_size], steps=steps[start:start + batch_size], **options)
             for start in range(0, len(rows), batch_size)]
    return upsample_cams(np.concatenate(parts), images.shape[1:3])


def pointing_table(model, images, rows):
    """{tolerance: {method: hit rate over noun phrases}} (Table 7.5), the phrase count and the maps."""
    shape = images.shape[1:3]
    computed = {name: _maps(model, images, rows, method, **options) for name, (method, options) in MAPS.items()}
    tables = {}
    for tolerance in TOLERANCES:
        hits = {name: [] for name in METHOD_LABELS}
        for row_index, row in enumerate(rows):
            for column, boxes in enumerate(row["boxes"]):
                boxes = np.asarray(boxes, np.float64)
                for name, maps in computed.items():
                    hits[name].append(metrics.pointing_game_hit(maps[row_index, ..., column], boxes, tolerance=tolerance))
                hits["centre"].append(metrics.centre_pointing_hit(boxes, shape, tolerance=tolerance))
                hits["random"].append(metrics.uniform_pointing_expectation(boxes, shape, tolerance=tolerance))
                others = [other for other in range(len(row["boxes"])) if other != column]
                hits["word_independent"].append(float(np.mean([
                    metrics.pointing_game_hit(computed["word_ceb_r"][row_index, ..., other], boxes, tolerance=tolerance)
                    for other in others])))
        tables[str(tolerance)] = {name: float(np.mean(values)) for name, values in hits.items()}
    return tables, sum(len(row["boxes"]) for row in rows), computed


def noun_accuracy(model, images, rows):
    """Teacher-forced: the share of head nouns that are the most probable digit name at their step (the caption fed)."""
    vocabulary = captioning.vocabulary_of(model)
    digits = np.array([vocabulary.index(name) for name in caption_set.CLASS_NAMES if name in vocabulary])
    if not len(digits):  # not the embedded set's vocabulary
        return None
    fed = np.stack([row["fed"] for row in rows])
    probabilities = model.predict([images[[row["image"] for row in rows]], fed], verbose=0, batch_size=64)
    right = [digits[int(np.argmax(probabilities[index, step, digits]))] == word
             for index, row in enumerate(rows) for step, word in zip(row["steps"], row["ids"])]
    return float(np.mean(right))


def generated_grounding(model, images, records, vocabulary, length):
    """Pointing game with the model's own greedy captions: phrases that parse and name a digit of the image."""
    generated = captioning.greedy_captions(model, images, max_words=length - 1)
    rows, parsed_count = [], 0
    for index, (words, record) in enumerate(zip(generated, records)):
        try:
            parsed = caption_set.parse_caption(words)
        except ValueError:
            continue
        parsed_count += 1
        truth = {}
        for phrase in record.captions[0].phrases:
            truth[phrase.words[-1].lower()] = phrase.boxes
        kept = [phrase for phrase in parsed["phrases"] if words[phrase["last_word"]] in truth]
        if kept:
            fed, _ = captioning.encode(words, vocabulary, length)
            rows.append(dict(image=index, fed=fed, steps=[phrase["last_word"] for phrase in kept],
                             ids=[vocabulary.index(words[phrase["last_word"]]) for phrase in kept],
                             boxes=[truth[words[phrase["last_word"]]] for phrase in kept],
                             words=[words[phrase["last_word"]] for phrase in kept]))
    if not rows:
        return {"parsed": parsed_count, "phrases": 0, "word_ceb_r": None}
    maps = _maps(model, images, rows, "word_ceb_r")
    hits = [metrics.pointing_game_hit(maps[row_index, ..., column], np.asarray(boxes, np.float64), tolerance=0)
            for row_index, row in enumerate(rows) for column, boxes in enumerate(row["boxes"])]
    return {"parsed": parsed_count, "images": len(records), "phrases": len(hits), "word_ceb_r": float(np.mean(hits))}


def _best_ms(function, repeats):
    function()  # warm up (traces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def cost_per_map(model, images, rows, repeats):
    """ms at batch 1: one forward pass of the captioner, one cEB-R word map, one Caption-Guided Saliency map."""
    import tensorflow as tf

    image, row = images[:1], rows[0]
    fed = row["fed"][None]
    forward = tf.function(lambda values, words: model([values, words], training=False), autograph=False)
    ids, steps = np.array([[row["ids"][0]]], np.int32), np.array([[row["steps"][0]]], np.int32)
    cells = int(np.prod(model.get_layer("backbone").output.shape[1:3]))
    timings = {"forward": _best_ms(lambda: forward(tf.constant(image), tf.constant(fed)).numpy(), repeats),
               "word_ceb_r": _best_ms(lambda: word_saliency.compute(model, image, ids, "word_ceb_r", words=fed, steps=steps),
                                      repeats),
               "caption_guided": _best_ms(lambda: word_saliency.compute(model, image, ids, "caption_guided", words=fed,
                                                                        steps=steps), repeats)}
    return {**timings, "cells": cells, "word_ceb_r_per_forward": timings["word_ceb_r"] / timings["forward"],
            "caption_guided_per_forward": timings["caption_guided"] / timings["forward"]}


def figure(path, images, records, rows, maps, count):
    """Per-word cEB-R maps (positive part) with each phrase's box, one row per image (its first caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [index for index, row in enumerate(rows) if row is rows[0] or row["image"] != rows[index - 1]["image"]][:count]
    width = max(len(rows[index]["ids"]) for index in chosen)
    figure_, axes = plt.subplots(len(chosen), width + 1, figsize=(2.2 * (width + 1), 2.4 * len(chosen)), squeeze=False)
    for line, index in enumerate(chosen):
        row = rows[index]
        image = (images[row["image"]] + 1) / 2
        axes[line, 0].imshow(image)
        axes[line, 0].set_title(" ".join(records[row["image"]].captions[0].words), fontsize=6)
        for column in range(width + 1):
            axes[line, column].axis("off")
        for column, boxes in enumerate(row["boxes"]):
            axis = axes[line, column + 1]
            axis.imshow(image)
            axis.imshow(np.maximum(maps[index, ..., column], 0), cmap="jet", alpha=0.5)
            for box in boxes:
                axis.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                             edgecolor="white", linewidth=1.5))
            peak = np.unravel_index(int(np.argmax(maps[index, ..., column])), maps.shape[1:3])
            axis.plot(peak[1] + 0.5, peak[0] + 0.5, "w+", markersize=8)
            axis.set_title(f"cEB-R '{row['words'][column]}'", fontsize=7)
    figure_.tight_layout()
    figure_.savefig(path, dpi=110)
    plt.close(figure_)


def video_grounding(model, path, seed=0, frames=8, enters=4):
    """Figure 7.7 in miniature: a clip where one digit moves in every frame and another enters at ``enters``; the image
    captioner's weights in a ``-Clips`` captioner (mean over frames); cEB-R of both nouns of the clip's caption (fed),
    per frame; the second noun's temporal grounding by §7.2's steps against its true segment [enters, frames)."""
    from sklearn.datasets import load_digits

    from mindgap.data.digits import background_crop, load_backgrounds, source_halves
    from mindgap.temporal import localize_unknown_length

    rng = np.random.default_rng(seed)
    source = load_digits()
    halves = source_halves(source.target)
    labels = rng.choice(len(halves), size=2, replace=False)
    glyphs = [(int(label), source.images[halves[label][1][int(rng.integers(len(halves[label][1])))]]) for label in labels]
    size = int(model.inputs[0].shape[1])
    bgr, digits, boxes = caption_set.entering_clip(rng, glyphs, background_crop(rng, load_backgrounds("skimage"), size),
                                                   frames=frames, enters=enters)
    clip = bgr[..., ::-1].astype(np.float32) / 127.5 - 1.0
    clips_model = captioning.clips_captioner(model)
    vocabulary = captioning.vocabulary_of(model)
    generated = captioning.greedy_captions(clips_model, clip[None])[0]
    words, phrases = caption_set.describe(digits, [0, 1])
    fed, _ = captioning.encode(words, vocabulary, len(words) + 1)
    steps = [first + count - 1 for first, count, _ in phrases]
    maps = word_saliency.compute(clips_model, clip[None], [[vocabulary.index(words[step]) for step in steps]],
                                 "word_ceb_r", words=fed[None], steps=[steps])[0]  # (T, h, w, 2)
    maps = np.stack([upsample_cams(frame[None], (size, size))[0] for frame in maps])
    sums = maps.sum(axis=(1, 2))
    hits = [[metrics.pointing_game_hit(maps[time, ..., index], boxes[index, time:time + 1].astype(np.float64), tolerance=0)
             for time in range(frames) if boxes[index, time, 0] >= 0] for index in range(2)]
    segment = localize_unknown_length(sums[:, 1])
    _video_figure(path, clip, words, steps, maps, boxes)
    return {"generated_caption": " ".join(generated), "fed_caption": " ".join(words), "frames": frames,
            "second_word_true_segment": [enters, frames], "second_word_segment": [int(segment[0]), int(segment[1])],
            "frame_sums": sums.round(4).tolist(), "pointing_per_word": [float(np.mean(hit)) for hit in hits],
            "figure": path}


def _video_figure(path, clip, words, steps, maps, boxes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = len(clip)
    figure_, axes = plt.subplots(2, frames, figsize=(1.6 * frames, 3.6), squeeze=False)
    for line, step in enumerate(steps):
        top = max(float(maps[..., line].max()), 1e-12)
        for time in range(frames):
            axis = axes[line, time]
            axis.imshow((clip[time] + 1) / 2)
            axis.imshow(np.maximum(maps[time, ..., line], 0) / top, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if boxes[line, time, 0] >= 0:
                x0, y0, x1, y1 = boxes[line, time]
                axis.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1))
            axis.axis("off")
            axis.set_title(f"'{words[step]}' t={time}\nsum {maps[time, ..., line].sum():+.2f}", fontsize=6)
    figure_.suptitle(" ".join(words), fontsize=8)
    figure_.tight_layout()
    figure_.savefig(path, dpi=110)
    plt.close(figure_)


def run(settings, out_dir, runs_dir, data_dir=None, eval_images=None):
    started, cpu_started = time.time(), time.process_time()
    os.makedirs(out_dir, exist_ok=True)
    if data_dir is None:
        set_dir = caption_set.ensure_captions_set(os.path.join(runs_dir, f"captions_set_{settings.name}"), **settings.data)
        dataset = caption_set.load_captions_set(set_dir)
    else:
        dataset = read_flickr30k_entities(data_dir)
    config = CaptionerConfig(**settings.train)
    model = trained_captioner(dataset, os.path.join(runs_dir, f"captioner_{settings.name}"), config)
    vocabulary = captioning.vocabulary_of(model)
    length = config.max_words + 1
    records = dataset["test"][:eval_images]
    images = captioning.load_images([record.path for record in records], config.image_size)
    generated = captioning.greedy_captions(model, images, max_words=config.max_words)
    references = [[[word.lower() for word in text.words] for text in record.captions] for record in records]
    quality = {"bleu4": captioning.bleu(references, generated), "exact_match": captioning.exact_match(references, generated),
               "samples": [" ".join(words) for words in generated[:5]]}
    rows = _queries(records, vocabulary, length)
    table, phrases, maps = pointing_table(model, images, rows)
    quality["noun_accuracy_teacher_forced"] = noun_accuracy(model, images, rows)
    with_generated = generated_grounding(model, images, records, vocabulary, length)
    cost = cost_per_map(model, images, rows, settings.timing_repeats)
    figure_path = os.path.join(out_dir, "figure_7_8_words.png")
    figure(figure_path, images, records, rows, maps["word_ceb_r"], settings.figure_images)
    video = video_grounding(model, os.path.join(out_dir, "figure_7_7_clip.png"))
    results = {"mode": settings.name, "settings": dataclasses.asdict(settings), "config": dataclasses.asdict(config),
               "test_images": len(records), "noun_phrases": phrases, "table_7_5": table["0"], "table_7_5_tolerance": table,
               "word_layer": word_saliency.WORD_LAYER,
               "thesis_table_7_5": THESIS_TABLE_7_5, "caption_quality": quality, "generated_captions": with_generated,
               "cost_ms": cost, "video": video, "figures": [figure_path, video["figure"]], "wall_seconds": time.time() - started,
               "process_cpu_seconds": time.process_time() - cpu_started}
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    markdown = report(results)
    with open(os.path.join(out_dir, "README.md"), "w") as handle:
        handle.write(markdown)
    print(markdown)
    return results


def report(results):
    lines = [f"# Caption grounding ({results['mode']} mode)", "",
             f"Pointing game per noun phrase ({results['noun_phrases']} phrases of {results['test_images']} test images, "
             "ground-truth captions fed; hit = the map's maximum inside the phrase's box, as the thesis; beside it with "
             "Zhang et al.'s 15 px tolerance scaled to the 64 px input, 4.3 px):", "",
             "| Method | ours | ours, 4.3 px tolerance | thesis (Flickr30kEntities) |", "|---|---|---|---|"]
    tables = results.get("table_7_5_tolerance", {"0": results["table_7_5"]})
    for name, label in METHOD_LABELS.items():
        thesis = THESIS_TABLE_7_5.get(name)
        cells = [f"{tables[key][name]:.3f}" if name in tables.get(key, {}) else "" for key in ("0", "scaled")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {'' if thesis is None else f'{thesis:.3f}'} |")
    quality, generated, cost = results["caption_quality"], results["generated_captions"], results["cost_ms"]
    nouns = quality.get("noun_accuracy_teacher_forced")
    lines += ["", f"Caption quality (greedy, test): BLEU-4 {quality['bleu4']:.3f}, exact match {quality['exact_match']:.3f}"
              + ("." if nouns is None else f"; teacher-forced head nouns right (the most probable digit name at the "
                                           f"noun's step) {nouns:.3f}."),
              f"With generated captions: {generated['phrases']} phrases of {generated.get('parsed', 0)} parsed captions, "
              f"cEB-R pointing {generated['word_ceb_r'] if generated['word_ceb_r'] is None else round(generated['word_ceb_r'], 3)}.",
              f"Cost at batch 1 (best of {results['settings']['timing_repeats']}, shared machine): forward {cost['forward']:.1f} ms, "
              f"cEB-R per word {cost['word_ceb_r']:.1f} ms ({cost['word_ceb_r_per_forward']:.2f}x), Caption-Guided Saliency "
              f"{cost['caption_guided']:.1f} ms ({cost['caption_guided_per_forward']:.2f}x; m = {cost['cells']} cells).",
              f"Clip (Figure 7.7 in miniature, fed {results['video']['fed_caption']!r}; generated "
              f"{results['video']['generated_caption']!r}): per-frame pointing of the two nouns "
              f"{results['video']['pointing_per_word']}; the second noun's segment by §7.2 "
              f"{results['video']['second_word_segment']} (true {results['video']['second_word_true_segment']}).",
              f"Target (cEB-R ≥ 20 points above centre and random, and above another word's map): "
              f"{_target_line(results['table_7_5'])}.",
              f"Wall {results['wall_seconds']:.0f} s, process CPU {results['process_cpu_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _target_line(table):
    margin = table["word_ceb_r"] - max(table["centre"], table["random"])
    met = margin >= 0.2 and table["word_ceb_r"] > table["word_independent"]
    return (f"{'met' if met else 'not met'}: {100 * margin:+.1f} points over the better baseline, "
            f"{table['word_ceb_r']:.3f} against {table['word_independent']:.3f} for another word's map")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-small", action="store_true", help="a handful of images, one epoch (tests)")
    parser.add_argument("--data-dir", default=None, help="a Flickr30kEntities folder instead of the embedded set")
    parser.add_argument("--out-dir", default=None, help="default docs/results/caption_grounding (extra-small: runs/...)")
    parser.add_argument("--runs-dir", default="runs/caption_grounding", help="the set and the trained captioner")
    parser.add_argument("--eval-images", type=int, default=None, help="ground the first N test images only (default all)")
    args = parser.parse_args(argv)
    settings = MODES["extra-small" if args.extra_small else "quick"]
    out_dir = args.out_dir or (os.path.join(args.runs_dir, "extra_small") if args.extra_small
                               else os.path.join("docs", "results", "caption_grounding"))
    try:
        run(settings, out_dir, args.runs_dir, args.data_dir, args.eval_images)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
