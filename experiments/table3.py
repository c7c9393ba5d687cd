"""Table 3: the six models with and without the L1 / L2 penalties (accuracy, precision, recall, MaP)."""

from experiments import common
from experiments.common import MAP_NOTE, PAPER_MODELS, PAPER_TABLE3, run_comparison

COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("map", "MaP"))


def main(argv=None):
    return run_comparison("table3", PAPER_MODELS, COLUMNS, PAPER_TABLE3, argv, __doc__, extra_notes=[f"- {MAP_NOTE}"])


if __name__ == "__main__":
    common.run_main(main)
