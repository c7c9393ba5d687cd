"""Facial emotion from video with web images (thesis §3.6): pre-processing, feature encoding, the video SVM.

Data: ``mindgap.data.fer`` (FER2013 + FER+ votes), ``mindgap.data.afew`` (AFEW folders), ``mindgap.data.faces`` (the
embedded stand-in); training with Probabilistic Label Drawing: ``mindgap.train(..., label_drawing="probabilistic")``.
"""

from mindgap.emotion.classify import THESIS_C_GRID, VideoClassifier, fit_video_classifier, linear_svm
from mindgap.emotion.encoding import (STATISTICS, encode_videos, frame_features, l2_normalize, layer_model, lbp_histograms,
                                      signed_square_root, ssr_l2, video_statistics)
from mindgap.emotion.preprocess import (FACE_SIZE, crop_face, detect_faces, equalize_histogram, face_boxes, largest_face,
                                        load_cascade, preprocess_face, to_grayscale)
