"""Table 4: CAM centre-of-mass localization, with the true class's CAM and with the prediction's."""

from experiments import common
from experiments.common import PAPER_MODELS, PAPER_TABLE4, run_comparison

COLUMNS = (("com_ground_truth", "centre of mass in a box, true class"),
           ("com_prediction", "centre of mass in a box, prediction (right only)"))


def main(argv=None):
    return run_comparison("table4", PAPER_MODELS, COLUMNS, PAPER_TABLE4, argv, __doc__, extra_notes=[
        "- On Stanford 40 the boxes surround the person, not the action's object; on digits they surround the digit."])


if __name__ == "__main__":
    common.run_main(main)
