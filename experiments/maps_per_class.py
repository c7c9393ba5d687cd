"""Maps per class: m = 1, 5, 10, with and without the L1 penalty (§4: GAP10 1.3 points under GAP5; GAP10-L1 0.7 over GAP5-L1)."""

from experiments import common
from experiments.common import MAP_NOTE, PAPER_MAPS_PER_CLASS, run_comparison

MODELS = ("Inception-GAP1", "Inception-GAP1-L1", "Inception-GAP5", "Inception-GAP5-L1", "Inception-GAP10", "Inception-GAP10-L1")
COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("map", "MaP"), ("com_ground_truth", "centre of mass, true class"))


def main(argv=None):
    return run_comparison("maps_per_class", MODELS, COLUMNS, PAPER_MAPS_PER_CLASS, argv, __doc__, extra_notes=[
        "- The paper gives m = 10 only as differences to m = 5 (74.6 and 76.2 are derived from them); m = 1 is not reported.",
        f"- {MAP_NOTE}"])


if __name__ == "__main__":
    common.run_main(main)
