"""Flickr30kEntities (Plummer et al. 2015): captions whose noun phrases are linked to boxes.

The layout (as distributed, with Flickr30k's images beside it)::

    ROOT/Sentences/<image id>.txt     five captions, one a line, phrases marked up
    ROOT/Annotations/<image id>.xml   the boxes of each phrase id (PASCAL VOC-like)
    ROOT/flickr30k-images/<id>.jpg    Flickr30k's images (or ROOT/images/)
    ROOT/{train,val,test}.txt         image ids of each split

A caption marks each phrase as ``[/EN#<id>/<type>[/<type>...] words of the phrase]``; the same id in several captions
of an image is the same entity (a coreference chain), ``EN#0`` / type ``notvisual`` has no box.  An ``<object>`` of
the XML holds one or more ``<name>`` (entity ids) and either a ``<bndbox>`` (1-based, inclusive pixel coordinates, as
the authors' ``flickr30k_entities_utils.get_annotations`` reads them) or ``<nobndbox>``/``<scene>``.  An entity may
have several boxes (one object each): a phrase "two men" points at both men.  Boxes are returned in mindgap's
convention, pixel-edge ``[x_min, y_min, x_max, y_max]`` with exclusive ends, so a 1-based inclusive ``xmin..xmax``
becomes ``[xmin - 1, xmax]``.

The embedded captioned set (:mod:`mindgap.data.captions`) is written in this layout, so one reader serves both.
"""

import dataclasses
import os
import re
import xml.etree.ElementTree as ElementTree

from mindgap.data.records import DatasetError, read_lines

SENTENCES_DIR = "Sentences"
ANNOTATIONS_DIR = "Annotations"
IMAGE_DIRS = ("flickr30k-images", "images")
SPLITS = ("train", "val", "test")
_PHRASE_START = re.compile(r"^\[/EN#(?P<entity>[^/\s]+)/(?P<types>\S+)$")


@dataclasses.dataclass(frozen=True)
class Phrase:
    """A marked-up noun phrase: its entity id, types, words and where they start in the caption, its boxes."""

    entity: str
    types: tuple
    first_word: int
    words: tuple
    boxes: tuple = ()  # ((x_min, y_min, x_max, y_max), ...) pixel-edge, exclusive ends; () when not visual

    @property
    def last_word(self):
        return self.first_word + len(self.words) - 1


@dataclasses.dataclass(frozen=True)
class Caption:
    words: tuple
    phrases: tuple

    @property
    def text(self):
        return " ".join(self.words)


@dataclasses.dataclass(frozen=True)
class CaptionedImage:
    image_id: str
    path: str
    size: tuple  # (width, height) from the annotation
    captions: tuple


def parse_sentence(line, where="the sentence"):
    """One marked-up caption → (words, [(entity, types, first word index, words)]).

    ``[/EN#18/people A child] in [/EN#19/clothing a pink dress]`` → words ``A child in a pink dress``,
    phrases ``("18", ("people",), 0, ("A", "child"))`` and ``("19", ("clothing",), 3, ("a", "pink", "dress"))``.
    """
    words, phrases, current = [], [], None
    for token in line.split():
        if current is None and token.startswith("["):
            match = _PHRASE_START.match(token)
            if match is None:
                raise DatasetError(f"Bad phrase mark {token!r} in {where}; a phrase starts as [/EN#<id>/<type> .")
            current = (match["entity"], tuple(match["types"].split("/")), len(words), [])
            continue
        closes = current is not None and token.endswith("]")
        word = token[:-1] if closes else token
        if word:
            words.append(word)
            if current is not None:
                current[3].append(word)
        if closes:
            if not current[3]:
                raise DatasetError(f"An empty phrase [/EN#{current[0]}/...] in {where}.")
            phrases.append((current[0], current[1], current[2], tuple(current[3])))
            current = None
    if current is not None:
        raise DatasetError(f"Phrase [/EN#{current[0]}/...] is not closed by ']' in {where}.")
    return tuple(words), phrases


def read_sentences(path):
    """The captions of one ``Sentences/<id>.txt`` as (words, phrases) pairs (:func:`parse_sentence`)."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [parse_sentence(line, f"{path} line {number}") for number, line in enumerate(lines, start=1) if line]


def read_annotation(path):
    """One ``Annotations/<id>.xml`` → ((width, height), {entity id: [box, ...]}) in pixel-edge, exclusive-end boxes."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DatasetError(f"Cannot read the annotation {path!r} ({error}); it must be Flickr30kEntities' XML.") from None
    try:
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
    except (AttributeError, TypeError, ValueError):
        raise DatasetError(f"{path!r} has no <size> with <width> and <height>.") from None
    boxes = {}
    for item in root.findall("object"):
        box = item.find("bndbox")
        if box is None:
            continue  # <nobndbox> or <scene>: no box
        try:
            x_min, y_min, x_max, y_max = (int(float(box.findtext(tag))) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise DatasetError(f"A <bndbox> of {path!r} lacks one of xmin, ymin, xmax, ymax.") from None
        for name in item.findall("name"):
            boxes.setdefault(name.text.strip(), []).append((x_min - 1, y_min - 1, x_max, y_max))
    return (width, height), boxes


def image_folder(root):
    for name in IMAGE_DIRS:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    raise DatasetError(f"No image folder in {root!r}: looked for {' or '.join(IMAGE_DIRS)}/ (Flickr30k's images).")


def is_flickr30k_entities(root):
    return all(os.path.isdir(os.path.join(root, name)) for name in (SENTENCES_DIR, ANNOTATIONS_DIR))


def read_image(root, image_id, images=None):
    """One image's :class:`CaptionedImage`: its captions with every phrase's boxes."""
    images = images or image_folder(root)
    sentences = read_sentences(os.path.join(root, SENTENCES_DIR, f"{image_id}.txt"))
    size, boxes = read_annotation(os.path.join(root, ANNOTATIONS_DIR, f"{image_id}.xml"))
    captions = tuple(Caption(words, tuple(Phrase(entity, types, first, phrase_words, tuple(boxes.get(entity, ())))
                                          for entity, types, first, phrase_words in phrases))
                     for words, phrases in sentences)
    path = next((os.path.join(images, f"{image_id}{extension}") for extension in (".jpg", ".png")
                 if os.path.isfile(os.path.join(images, f"{image_id}{extension}"))), os.path.join(images, f"{image_id}.jpg"))
    return CaptionedImage(str(image_id), path, size, captions)


def read_flickr30k_entities(root, splits=SPLITS):
    """{split: [CaptionedImage]} of a Flickr30kEntities folder (the split files list the image ids)."""
    root = os.fspath(root)
    if not is_flickr30k_entities(root):
        raise DatasetError(f"{root!r} is not a Flickr30kEntities folder: it needs {SENTENCES_DIR}/ and {ANNOTATIONS_DIR}/.")
    images = image_folder(root)
    result = {}
    for split in splits:
        listing = os.path.join(root, f"{split}.txt")
        if not os.path.isfile(listing):
            raise DatasetError(f"No {split}.txt in {root!r}; Flickr30kEntities lists each split's image ids in one.")
        result[split] = [read_image(root, image_id, images) for image_id in read_lines(listing) if image_id]
        missing = [record.path for record in result[split] if not os.path.isfile(record.path)]
        if missing:
            raise DatasetError(f"{len(missing)} image(s) of the {split} split are missing, e.g. {missing[0]!r}; put "
                               f"Flickr30k's images in {images}.")
    return result
