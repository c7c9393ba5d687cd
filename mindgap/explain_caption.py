"""``mindgap explain-caption``: caption an image (or a clip folder) and write one cEB-R map per word.

The model's greedy caption is fed back (the thesis grounds generated captions, §7.5: "our method can better highlight
evidence using generated captions"), or a given caption (Table 7.5 feeds the ground-truth ones), and each chosen word
is grounded at the step where it was predicted (``mindgap.saliency.caption``).  A clip folder's frames go through a
``Tiny-Captioner-Clips`` (mean pooling over frames); the figure then shows every frame's map for each word (thesis
Figure 7.7).
"""

import os

import numpy as np

from mindgap import captioning
from mindgap.cam import upsample_cams
from mindgap.saliency import caption as word_saliency


def _inputs(path, model):
    size = int(model.inputs[0].shape[-2])
    if os.path.isdir(path):
        if not captioning.takes_clips(model):
            raise ValueError(f"{path!r} is a folder (a clip) but {model.name!r} captions images; pass an image, or a "
                             "Tiny-Captioner-Clips model.")
        frames = sorted(os.path.join(path, name) for name in os.listdir(path)
                        if name.lower().endswith((".jpg", ".jpeg", ".png", ".bmp")))
        if not frames:
            raise ValueError(f"No frames (.jpg, .png, .bmp) in {path!r}.")
        return captioning.load_images(frames, size)[None]
    if captioning.takes_clips(model):
        raise ValueError(f"{model.name!r} captions clips: pass a folder of frames, not the file {path!r}.")
    return captioning.load_images([path], size)


def explain_caption(path, model, words=None, out=None, method="word_ceb_r", rule="authors", max_words=captioning.MAX_WORDS,
                    caption=None):
    """Caption ``path`` (an image, or a folder of frames for a clips captioner) and ground ``words``.

    Args:
        words: the words to ground (default: every word of the caption that is not "a", "of", "and").
        caption: a caption to feed instead of the model's own (a string or word list; Table 7.5 feeds the
            ground-truth captions); each word is grounded at the step where the model predicts it.
        out: a PNG path for the figure (one panel per word; per frame for clips), or None.
        max_words: the longest caption decoded.

    Returns:
        (caption words, {word: map at the input size, (H, W) or (T, H, W)}).
    """
    inputs = _inputs(os.fspath(path), model)
    if caption is None:
        caption = captioning.greedy_captions(model, inputs, max_words=max_words)[0]
    else:
        caption = captioning.tokens(caption if isinstance(caption, str) else " ".join(caption))
    if not caption:
        raise ValueError(f"The model's caption of {path!r} is empty; nothing to ground.")
    wanted = [word for word in caption if word not in ("a", "of", "and")] if words is None else list(words)
    missing = [word for word in wanted if word not in caption]
    if missing:
        raise ValueError(f"{', '.join(missing)} not in the caption {' '.join(caption)!r}; choose among its words.")
    vocabulary = captioning.vocabulary_of(model)
    unknown = [word for word in wanted if word not in vocabulary]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the captioner's vocabulary; it knows {' '.join(vocabulary[4:])}.")
    fed, _ = captioning.encode(caption, vocabulary, len(caption) + 1)
    steps = [caption.index(word) for word in wanted]
    maps = word_saliency.compute(model, inputs, [[vocabulary.index(word) for word in wanted]], method, words=fed[None],
                                 steps=[steps], rule=rule)[0]
    size = inputs.shape[-3:-1]
    if maps.ndim == 4:  # (T, h, w, n)
        maps = np.stack([upsample_cams(frame[None], size)[0] for frame in maps])
        grounded = {word: maps[..., index] for index, word in enumerate(wanted)}
    else:
        maps = upsample_cams(maps[None], size)[0]
        grounded = {word: maps[..., index] for index, word in enumerate(wanted)}
    if out is not None:
        _figure(out, inputs[0], caption, grounded)
    return caption, grounded


def _figure(path, inputs, caption, grounded):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = inputs if inputs.ndim == 4 else inputs[None]
    figure, axes = plt.subplots(len(grounded), len(frames), figsize=(2 * len(frames), 2.1 * len(grounded)), squeeze=False)
    for line, (word, values) in enumerate(grounded.items()):
        values = values if values.ndim == 3 else values[None]
        top = max(float(values.max()), 1e-12)
        for column, (frame, value) in enumerate(zip(frames, values)):
            axis = axes[line, column]
            axis.imshow((frame + 1) / 2)
            axis.imshow(np.maximum(value, 0) / top, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axis.axis("off")
            axis.set_title(f"'{word}'" + (f" t={column}" if len(frames) > 1 else ""), fontsize=7)
    figure.suptitle(" ".join(caption), fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
