"""The README's main job: the paper's six models on the embedded scenes set, on a CPU (about 10 minutes on 2 cores).

Generates the scenes set if absent, trains (or reuses) GAP5 and GAP-Zhou with
no penalty, L1 and L2, evaluates them on the test split, prints one table
beside the paper's numbers, writes the CAM figures (Figure 3 and 4 style)
and states each of the paper's claims as a one-seed observation
(``experiments.claims`` tests them over several seeds).
"""

import os

from experiments import common, workers
from experiments.claims import CLAIMS, one_seed_observation
from experiments.figure3 import make_figure3
from experiments.figure4 import make_figure4

COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("map", "MaP"),
           ("com_ground_truth", "loc. true class"), ("com_prediction", "loc. prediction"), ("pointing_game", "pointing game"))


def main(argv=None):
    args = common.main_parser(__doc__).parse_args(argv)
    args.workers = workers.worker_count(args)
    mode = common.resolve_mode(args)
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "quickstart")
    slowest_first = sorted(common.PAPER_MODELS, key=lambda paper_name: "Zhou" not in paper_name)
    workers.train_in_parallel(mode, [(mode.model_name(paper_name), None) for paper_name in slowest_first], args.workers)
    numbers, rows, reports, starts = {}, [], {}, {}
    for paper_name in common.PAPER_MODELS:
        name = mode.model_name(paper_name)
        print(f"== {name}", flush=True)
        report, run_dir, _ = common.evaluated(mode, name, dataset)
        numbers[paper_name] = {"model": name, "run_dir": run_dir, **common.flat_numbers(report)}
        rows.append((paper_name, name, numbers[paper_name]))
        reports[name] = report
        starts[name] = common.describe_start(mode, name)
    with common.Stopwatch() as figure4_clock:
        make_figure4(reports, out_dir)
    with common.Stopwatch() as figure3_clock:
        _, figure3_results = make_figure3(mode, dataset, common.PAPER_MODELS, out_dir)
    observations = [one_seed_observation(claim, numbers) for claim in CLAIMS]
    sparsity = "| model | share of positive CAM mass on the true class (test mean) |\n|---|---|\n" + "\n".join(
        f"| {values['model']} | {100 * values['cam_mass_on_true_class']:.1f} % |" for values in numbers.values())
    markdown = "\n".join([
        "## quickstart: the paper's six models",
        "",
        common.comparison_table(rows, COLUMNS, common.PAPER_MEASURES),
        "",
        sparsity,
        "",
        f"*{common.caption(mode, dataset)}*",
        *[f"- {name}: {start}" for name, start in starts.items()],
        f"- {common.MAP_NOTE}",
        "- loc. = CAM centre of mass inside a ground-truth box (paper Table 4); pointing game = the true class's CAM "
        "maximum within 15 px · side / 224 of a box (Zhang et al. 2016; not in the paper). `python -m experiments.grounding` "
        "sets both against baselines that know no model (the centre, a random point, a contrast peak).",
        "",
        "### The paper's claims on this run: one-seed observations, not verdicts",
        "",
        *[f"- {observation}" for observation in observations],
        "",
        "Each model was trained once (one seed), so these differences carry no uncertainty estimate. "
        "`python -m experiments.claims --seeds 5` trains every model with several seeds and gives, per claim, "
        "the paired difference with its 95 % interval and a verdict (held / did not hold / cannot tell).",
        "",
        f"Figures: {os.path.join(out_dir, 'figure3.png')} (all CAMs of one image per model), "
        f"{os.path.join(out_dir, 'figure4.png')} (IoU > 0.5 against the CAM threshold); "
        f"per-epoch CAM snapshots in each model's run folder (cam_snapshots/).",
    ])
    results = {"models": numbers, "one_seed_observations": observations,
               "figure3": figure3_results, "timing": {"figure3": figure3_clock.seconds, "figure4": figure4_clock.seconds}}
    common.write_outputs(out_dir, mode, {"experiment": "quickstart"}, results, markdown)


if __name__ == "__main__":
    common.run_main(main)
