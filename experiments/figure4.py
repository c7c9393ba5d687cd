"""Figure 4: share of images with IoU > 0.5 against the CAM threshold, for the six models on one plot."""

import os

from experiments import common
from mindgap.plots import plot_iou_curves

PAPER_STATEMENTS = (
    "- Paper (best case over thresholds): GAP5 is 2.7 points above GAP-Zhou, GAP-Zhou-L1 3 points above GAP-Zhou, "
    "GAP5-L1 2.25 points below GAP5."
)


def make_figure4(reports, out_dir):
    """reports: {model name: report dict}. Writes figure4.png (predicted class) and figure4_true_class.png."""
    thresholds = next(iter(reports.values()))["thresholds"]
    predicted = plot_iou_curves({name: report["iou_curve_pred"] for name, report in reports.items()}, thresholds,
                                os.path.join(out_dir, "figure4.png"), "Predicted class (counted when right): IoU > 0.5")
    true_class = plot_iou_curves({name: report["iou_curve_true"] for name, report in reports.items()}, thresholds,
                                 os.path.join(out_dir, "figure4_true_class.png"), "True class: IoU > 0.5")
    return predicted, true_class


def main(argv=None):
    args = common.main_parser(__doc__).parse_args(argv)
    mode = common.resolve_mode(args)
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "figure4")
    reports = {}
    for paper_name in common.PAPER_MODELS:
        name = mode.model_name(paper_name)
        reports[name], _, _ = common.evaluated(mode, name, dataset)
    make_figure4(reports, out_dir)
    lines = ["## figure4", "", "| model | best % IoU > 0.5 (prediction) | at threshold | best % (true class) | at threshold |",
             "|---|---|---|---|---|"]
    results = {}
    for name, report in reports.items():
        loc = report["localization"]
        results[name] = {key: loc[key] for key in ("best_box_iou50_pred", "best_box_iou50_pred_threshold",
                                                   "best_box_iou50_true", "best_box_iou50_true_threshold")}
        lines.append(f"| {name} | {100 * loc['best_box_iou50_pred']:.1f} | {100 * loc['best_box_iou50_pred_threshold']:.0f} % | "
                     f"{100 * loc['best_box_iou50_true']:.1f} | {100 * loc['best_box_iou50_true_threshold']:.0f} % |")
    lines += ["", f"*{common.caption(mode, dataset)}*", PAPER_STATEMENTS]
    common.write_outputs(out_dir, mode, {"experiment": "figure4"}, results, "\n".join(lines))


if __name__ == "__main__":
    common.run_main(main)
