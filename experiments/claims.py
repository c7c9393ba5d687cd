"""The paper's claims with their uncertainty: each of the six models trained with N seeds.

For every claim "A beats B on a measure" the table gives A and B as mean ± standard
deviation over the seeds, the paired difference A − B (seed i of A against seed i of B)
with its 95 % interval (Student's t on the paired differences), and a verdict:

* **held**: the whole interval lies on the claimed side of zero;
* **did not hold**: the whole interval lies on the other side;
* **cannot tell at this N**: the interval contains zero (or N = 1, which has no interval).

Beside each verdict, the paper's own difference (Tables 3 and 4, points) and where it lies against the interval:
"below" or "above" means the set would have shown a difference of the paper's size and did not, so a claim that
cannot be told is still a finding about the paper's effect (:func:`paper_size_against`).

Seed 0 is the seed of the other experiments, so its models are reused from the cache;
``--seeds 5`` trains four more of each model, two at a time (``--workers``).

    python -m experiments.claims --seeds 5            # quick mode
    python -m experiments.claims --seeds 5 --full --data-dir Stanford40
"""

import dataclasses

import numpy as np
from scipy import stats

from experiments import common, workers

GAP5, ZHOU = "Inception-GAP5", "Inception-GAP-Zhou"


@dataclasses.dataclass(frozen=True)
class Claim:
    """"``better`` scores higher than ``other`` on ``measure``" (both paper model names)."""

    text: str
    better: str
    other: str
    measure: str


CLAIMS = (
    Claim("GAP5 localizes better than GAP-Zhou (centre of mass, true class)", GAP5, ZHOU, "com_ground_truth"),
    Claim("GAP5 localizes better than GAP-Zhou (centre of mass, prediction)", GAP5, ZHOU, "com_prediction"),
    Claim("GAP5 classifies better than GAP-Zhou (accuracy)", GAP5, ZHOU, "accuracy"),
    Claim("L1 raises the precision of GAP5", f"{GAP5}-L1", GAP5, "precision"),
    Claim("L1 raises the MaP of GAP5", f"{GAP5}-L1", GAP5, "map"),
    Claim("L1 raises the precision of GAP-Zhou", f"{ZHOU}-L1", ZHOU, "precision"),
    Claim("L1 raises the MaP of GAP-Zhou", f"{ZHOU}-L1", ZHOU, "map"),
    Claim("L1 CAMs are sparser than L2 CAMs on GAP5 (CAM mass on the true class)", f"{GAP5}-L1", f"{GAP5}-L2",
          "cam_mass_on_true_class"),
    Claim("L1 CAMs are sparser than L2 CAMs on GAP-Zhou (CAM mass on the true class)", f"{ZHOU}-L1", f"{ZHOU}-L2",
          "cam_mass_on_true_class"),
)


def paired_interval(differences, confidence=0.95):
    """(mean, low, high) of the mean of paired differences, Student's t; low = high = None for one pair."""
    differences = np.asarray(differences, np.float64)
    mean = float(differences.mean())
    if len(differences) < 2:
        return mean, None, None
    half_width = stats.t.ppf(0.5 + confidence / 2, len(differences) - 1) * differences.std(ddof=1) / np.sqrt(len(differences))
    return mean, float(mean - half_width), float(mean + half_width)


def seeds_to_decide(differences, confidence=0.95, most=10_000):
    """The N at which the interval of :func:`paired_interval` would exclude zero if the mean and the standard deviation
    of ``differences`` stayed as observed: the least N >= 2 with ``t(N - 1) · sd / sqrt(N) < |mean|``.
    None for fewer than 2 differences or a mean of 0; ``most`` + 1 when even ``most`` seeds would not do."""
    differences = np.asarray(differences, np.float64)
    if len(differences) < 2 or differences.mean() == 0:
        return None
    mean, sd = abs(float(differences.mean())), float(differences.std(ddof=1))
    if sd == 0:
        return 2
    for count in range(2, most + 1):
        if stats.t.ppf(0.5 + confidence / 2, count - 1) * sd / np.sqrt(count) < mean:
            return count
    return most + 1


def paper_difference(claim):
    """The paper's ``better − other`` on the claim's measure, in points (Tables 3 and 4); None where it has none."""
    better, other = common.PAPER_MEASURES.get(claim.better, {}), common.PAPER_MEASURES.get(claim.other, {})
    if claim.measure not in better or claim.measure not in other:
        return None
    return round(better[claim.measure] - other[claim.measure], 1)


def paper_size_against(paper, low, high):
    """Where the paper's difference ``paper`` (points) lies against the interval [``low``, ``high``] (points):
    ``"inside"``, ``"above"`` (the interval excludes an effect that large), ``"below"``; None without both."""
    if paper is None or low is None:
        return None
    return "above" if paper > high else "below" if paper < low else "inside"


def verdict(low, high):
    """held / did not hold / cannot tell, for an interval of "better − other"."""
    if low is None:
        return "cannot tell at this N"
    if low > 0:
        return "held"
    if high < 0:
        return "did not hold"
    return "cannot tell at this N"


def compare(text, better, other, measure=None, scale=100.0):
    """The claim "``better`` > ``other``" on paired per-seed values: a result dict (``claims_table``'s row, which shows
    the values times ``scale``: 100 for fractions shown in points)."""
    better, other = np.asarray(better, np.float64), np.asarray(other, np.float64)
    mean, low, high = paired_interval(better - other)
    return {"claim": text, "measure": measure, "better_values": better.tolist(), "other_values": other.tolist(),
            "difference": mean, "low": low, "high": high, "verdict": verdict(low, high),
            "seeds_to_decide": seeds_to_decide(better - other), "scale": scale}


def assess(claim, scores):
    """One claim on ``scores[paper model][seed index] = {measure: value}``: a result dict."""
    result = compare(claim.text, [run[claim.measure] for run in scores[claim.better]],
                     [run[claim.measure] for run in scores[claim.other]], claim.measure)
    paper = paper_difference(claim)
    scale = result["scale"]
    against = paper_size_against(paper, None if result["low"] is None else scale * result["low"],
                                 None if result["high"] is None else scale * result["high"])
    return {**result, "better": claim.better, "other": claim.other, "paper_difference": paper,
            "paper_difference_against_interval": against}


def one_seed_observation(claim, numbers):
    """A one-seed difference stated as what it is: an observation, not a test."""
    difference = numbers[claim.better][claim.measure] - numbers[claim.other][claim.measure]
    return (f"{claim.text}: difference {100 * difference:+.1f} points on one seed "
            f"({100 * numbers[claim.better][claim.measure]:.1f} vs {100 * numbers[claim.other][claim.measure]:.1f})")


def _spread(values, scale=100.0):
    values = scale * np.asarray(values)
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def _interval(result):
    scale = result.get("scale", 100.0)
    if result["low"] is None:
        return f"{scale * result['difference']:+.1f} (no interval at N = 1)"
    return f"{scale * result['difference']:+.1f} [{scale * result['low']:+.1f}, {scale * result['high']:+.1f}]"


def _paper_column(result):
    paper, against = result.get("paper_difference"), result.get("paper_difference_against_interval")
    if paper is None:
        return "– (not in the paper's tables)"
    words = {"above": "above: excluded", "below": "below: excluded", "inside": "inside", None: "no interval"}
    return f"{paper:+.1f}: {words[against]}"


def claims_table(results, seeds):
    lines = [f"| claim | A (mean ± sd, N = {seeds}) | B (mean ± sd) | A − B [95 % interval], points | verdict | "
             "N that would decide | the paper's A − B: against the interval |", "|---|---|---|---|---|---|---|"]
    for result in results:
        needed = result.get("seeds_to_decide")
        decide = "–" if result["verdict"] != "cannot tell at this N" else ("?" if needed is None else
                                                                           (f"> {needed - 1}" if needed > 10_000 else str(needed)))
        lines.append(f"| {result['claim']} | {_spread(result['better_values'], result.get('scale', 100.0))} | "
                     f"{_spread(result['other_values'], result.get('scale', 100.0))} | "
                     f"{_interval(result)} | **{result['verdict']}** | {decide} | {_paper_column(result)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = common.main_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per model (0 … N-1); at least 2 for an interval")
    args = parser.parse_args(argv)
    args.workers = workers.worker_count(args)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}.")
    mode = common.resolve_mode(args)
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "claims")
    slowest_first = sorted(common.PAPER_MODELS, key=lambda paper_name: "Zhou" not in paper_name)
    workers.train_in_parallel(mode, [(mode.model_name(paper_name), seed) for seed in range(args.seeds)
                                     for paper_name in slowest_first], args.workers)
    scores, runs = {}, {}
    for paper_name in common.PAPER_MODELS:
        name = mode.model_name(paper_name)
        scores[paper_name], runs[paper_name] = [], []
        for seed in range(args.seeds):
            print(f"== {name}, seed {seed}", flush=True)
            report, run_dir, _ = common.evaluated(mode, name, dataset, seed=seed)
            scores[paper_name].append(common.flat_numbers(report))
            runs[paper_name].append(run_dir)
    results = [assess(claim, scores) for claim in CLAIMS]
    markdown = "\n".join([
        f"## claims: the paper's claims over {args.seeds} seeds",
        "",
        claims_table(results, args.seeds),
        "",
        f"*{common.caption(mode, dataset)}* Seeds 0 … {args.seeds - 1} of the training run (initialisation, shuffling); "
        "the data set is fixed. A = the first model named in the claim, B = the second; paired over seeds; "
        "95 % interval from Student's t with N − 1 degrees of freedom. *N that would decide*: for a claim that cannot "
        "be told, the number of seeds at which the interval would exclude zero if the observed mean and sd held. "
        "*The paper's A − B*: its Tables 3 and 4 (InceptionV3 on Stanford 40); \"excluded\": the interval rules out "
        "a difference of the paper's size, so the set could have shown the paper's effect.",
    ])
    common.write_outputs(out_dir, mode, {"experiment": "claims", "seeds": args.seeds},
                         {"claims": results, "runs": runs, "scores": scores}, markdown)


if __name__ == "__main__":
    common.run_main(main)
