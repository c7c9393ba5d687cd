"""The video classifier of thesis §3.6.2: scikit-learn's ``LinearSVC`` (liblinear), one vs rest, C by 5-fold cross-validation.

The thesis searches C by 5-fold cross-validation, finds its best results for
C in [0.5, 2] and reports C = 1; :data:`THESIS_C_GRID` is that range.
"""

import dataclasses

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC

THESIS_C_GRID = (0.5, 1.0, 2.0)
FOLDS = 5


@dataclasses.dataclass
class VideoClassifier:
    """A fitted one-vs-rest linear SVM, the C chosen, and the mean cross-validation accuracy of each C."""

    svm: LinearSVC
    c: float
    cv_accuracy: dict

    def predict(self, features):
        return self.svm.predict(features)


def linear_svm(c=1.0, seed=0):
    """The thesis's classifier: ``LinearSVC`` one vs rest (scikit-learn's default, liblinear's squared hinge)."""
    return LinearSVC(C=c, multi_class="ovr", random_state=seed, max_iter=20000)


def fit_video_classifier(features, labels, c_grid=THESIS_C_GRID, folds=FOLDS, seed=0):
    """Choose C in ``c_grid`` by stratified ``folds``-fold cross-validation (fewer when a class has fewer videos), refit on all."""
    labels = np.asarray(labels)
    folds = min(folds, int(np.bincount(labels).min()) if len(labels) else 0)
    if folds < 2:
        svm = linear_svm(c_grid[len(c_grid) // 2], seed).fit(features, labels)
        return VideoClassifier(svm, float(svm.C), {})
    search = GridSearchCV(linear_svm(seed=seed), {"C": list(c_grid)}, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(features, labels)
    scores = {float(c): float(score) for c, score in zip(search.cv_results_["param_C"], search.cv_results_["mean_test_score"])}
    return VideoClassifier(search.best_estimator_, float(search.best_params_["C"]), scores)
