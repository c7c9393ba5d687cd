"""Table 2: Inception-GAP5 against Inception-GAP-Zhou and GoogLeNet-GAP-Zhou (accuracy, precision, recall)."""

from experiments import common
from experiments.common import PAPER_TABLE2, run_comparison

MODELS = ("Inception-GAP5", "Inception-GAP-Zhou", "GoogLeNet-GAP-Zhou")
COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"))


def main(argv=None):
    return run_comparison("table2", MODELS, COLUMNS, PAPER_TABLE2, argv, __doc__,
                          extra_notes=["- Precision and recall as Keras 1: a label counts when its probability is over 0.5."])


if __name__ == "__main__":
    common.run_main(main)
