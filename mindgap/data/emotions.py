"""The seven emotion classes of EmotiW / AFEW and FER2013, and the names each data set gives them.

:data:`EMOTIONS` is the class order of every emotion set in mindgap: AFEW's folder names, lower-cased and sorted
(``Angry Disgust Fear Happy Neutral Sad Surprise``), which is also the order a class-folder set of them sorts into.
FER2013 numbers its ``emotion`` column otherwise (:data:`FER2013_ORDER`); FER+ names its vote columns otherwise again
(:data:`FERPLUS_COLUMNS`).
"""

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FER2013_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer2013.csv's emotion 0…6
# fer2013new.csv (FER+, Barsoum et al. 2016): ten vote columns after Usage and Image name.
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
ALIASES = {"angry": "angry", "anger": "angry", "disgust": "disgust", "disgusted": "disgust", "fear": "fear",
           "fearful": "fear", "happy": "happy", "happiness": "happy", "neutral": "neutral", "sad": "sad",
           "sadness": "sad", "surprise": "surprise", "surprised": "surprise"}


def emotion_index(name):
    """The index in :data:`EMOTIONS` of ``name`` (any case, any alias of :data:`ALIASES`), or None."""
    canonical = ALIASES.get(str(name).strip().lower())
    return None if canonical is None else EMOTIONS.index(canonical)
