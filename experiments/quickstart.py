"""The README's main job: the paper's six models on the embedded digits set, in minutes on a CPU.

Generates the digits set if absent, trains (or reuses) GAP5 and GAP-Zhou with
no penalty, L1 and L2, evaluates them on the test split, prints one table
beside the paper's numbers, writes the CAM figures (Figure 3 and 4 style)
and says plainly which of the paper's claims held on this run.
"""

import os

from experiments import common
from experiments.figure3 import make_figure3
from experiments.figure4 import make_figure4

COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("map", "MaP"),
           ("com_ground_truth", "loc. true class"), ("com_prediction", "loc. prediction"))
PAPER = {name: {**common.PAPER_TABLE3[name], **common.PAPER_TABLE4[name]} for name in common.PAPER_MODELS}


def _verdict(held):
    return "held" if held else "did NOT hold"


def check_claims(numbers):
    """The paper's claims, checked on this run's numbers: list of (claim, held, evidence)."""
    gap5, zhou = numbers["Inception-GAP5"], numbers["Inception-GAP-Zhou"]
    claims = []
    held = gap5["com_ground_truth"] >= zhou["com_ground_truth"] and gap5["com_prediction"] >= zhou["com_prediction"]
    claims.append(("GAP5 localizes at least as well as GAP-Zhou (centre of mass, true class and prediction)", held,
                   f"{100 * gap5['com_ground_truth']:.1f} / {100 * gap5['com_prediction']:.1f} vs "
                   f"{100 * zhou['com_ground_truth']:.1f} / {100 * zhou['com_prediction']:.1f}"))
    claims.append(("GAP5 classifies at least as well as GAP-Zhou (accuracy)", gap5["accuracy"] >= zhou["accuracy"],
                   f"{100 * gap5['accuracy']:.1f} vs {100 * zhou['accuracy']:.1f}"))
    for head in ("Inception-GAP5", "Inception-GAP-Zhou"):
        plain, l1 = numbers[head], numbers[f"{head}-L1"]
        for key, label in (("precision", "precision"), ("map", "MaP")):
            claims.append((f"L1 raises {label} of {head.split('-', 1)[1]}", l1[key] > plain[key],
                           f"{100 * l1[key]:.1f} with L1 vs {100 * plain[key]:.1f} without"))
        l2 = numbers[f"{head}-L2"]
        claims.append((f"L1 CAMs are sparser than L2 CAMs on {head.split('-', 1)[1]} (share of positive CAM mass on the true class)",
                       l1["cam_mass_on_true_class"] > l2["cam_mass_on_true_class"],
                       f"{100 * l1['cam_mass_on_true_class']:.1f} % with L1 vs {100 * l2['cam_mass_on_true_class']:.1f} % with L2"))
    return claims


def main(argv=None):
    args = common.main_parser(__doc__).parse_args(argv)
    mode = common.resolve_mode(args)
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "quickstart")
    numbers, rows, reports, starts = {}, [], {}, {}
    for paper_name in common.PAPER_MODELS:
        name = mode.model_name(paper_name)
        print(f"== {name}", flush=True)
        report, run_dir, _ = common.evaluated(mode, name, dataset)
        numbers[paper_name] = {"model": name, "run_dir": run_dir, **common.flat_numbers(report)}
        rows.append((paper_name, name, numbers[paper_name]))
        reports[name] = report
        starts[name] = common.describe_start(mode, name)
    make_figure4(reports, out_dir)
    _, figure3_results = make_figure3(mode, dataset, common.PAPER_MODELS, out_dir)
    claims = check_claims(numbers)
    sparsity = "| model | share of positive CAM mass on the true class (test mean) |\n|---|---|\n" + "\n".join(
        f"| {values['model']} | {100 * values['cam_mass_on_true_class']:.1f} % |" for values in numbers.values())
    markdown = "\n".join([
        "## quickstart: the paper's six models",
        "",
        common.comparison_table(rows, COLUMNS, PAPER),
        "",
        sparsity,
        "",
        f"*{common.caption(mode, dataset)}*",
        *[f"- {name}: {start}" for name, start in starts.items()],
        f"- {common.MAP_NOTE}",
        "- loc. = CAM centre of mass inside a ground-truth box (paper Table 4).",
        "",
        "### Did the paper's claims hold on this run?",
        "",
        *[f"- {claim}: **{_verdict(held)}** ({evidence})" for claim, held, evidence in claims],
        "",
        "Each model was trained once (one seed): differences of a point or less may be run-to-run noise, "
        "which this run does not measure.",
        "",
        f"Figures: {os.path.join(out_dir, 'figure3.png')} (all CAMs of one image per model), "
        f"{os.path.join(out_dir, 'figure4.png')} (IoU > 0.5 against the CAM threshold); "
        f"per-epoch CAM snapshots in each model's run folder (cam_snapshots/).",
    ])
    results = {"models": numbers, "claims": [{"claim": c, "held": h, "evidence": e} for c, h, e in claims],
               "figure3": figure3_results}
    common.write_outputs(out_dir, mode, {"experiment": "quickstart"}, results, markdown)


if __name__ == "__main__":
    common.run_main(main)
