import json

import numpy as np
import pytest

from experiments import claims, figure3, figure4, maps_per_class, quickstart, table2, table3, table4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runs"))


def _run(module, runs, *extra):
    module.main(["--extra-small", "--runs-dir", runs, *extra])


def _outputs(runs, name):
    folder = f"{runs}/{name}-extra-small"
    with open(f"{folder}/results.json") as handle:
        results = json.load(handle)
    with open(f"{folder}/config.json") as handle:
        config = json.load(handle)
    with open(f"{folder}/table.md") as handle:
        table = handle.read()
    assert config["mode"]["name"] == "extra-small"
    return folder, results, table


@pytest.mark.parametrize(
    "module,name,models,keys,header",
    [
        (table2, "table2", ["Inception-GAP5", "Inception-GAP-Zhou", "GoogLeNet-GAP-Zhou"], ["accuracy", "precision", "recall"],
         "| model | accuracy (ours / paper) | precision (ours / paper) | recall (ours / paper) |"),
        (table3, "table3", list(table3.PAPER_MODELS), ["accuracy", "precision", "recall", "map"],
         "| model | accuracy (ours / paper) | precision (ours / paper) | recall (ours / paper) | MaP (ours / paper) |"),
        (table4, "table4", list(table4.PAPER_MODELS), ["com_ground_truth", "com_prediction"],
         "| model | centre of mass in a box, true class (ours / paper) | centre of mass in a box, prediction (right only) (ours / paper) |"),
        (maps_per_class, "maps_per_class", list(maps_per_class.MODELS), ["accuracy", "precision", "map", "com_ground_truth"],
         "| model | accuracy (ours / paper) | precision (ours / paper) | MaP (ours / paper) | centre of mass, true class (ours / paper) |"),
    ],
)
def test_tables(runs, module, name, models, keys, header):
    _run(module, runs)
    _, results, table = _outputs(runs, name)
    assert list(results) == models
    for values in results.values():
        assert all(0.0 <= values[key] <= 1.0 for key in keys)
    assert header in table
    assert "Tiny-GAP5 (paper: Inception-GAP5)" in table and "extra-small mode" in table
    for paper_name, values in results.items():  # the table shows what the model's own test report measured
        with open(f"{values['run_dir']}/report_test.json") as handle:
            report = json.load(handle)
        confusion = np.asarray(report["confusion"])
        assert confusion.sum() == report["num_images"]
        assert values["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())  # by hand, from the counts
        if "accuracy" in keys:
            label = values["model"] if values["model"] == paper_name else f"{values['model']} (paper: {paper_name})"
            assert f"| {label} | {100 * values['accuracy']:.1f} / " in table
    if name == "table3":
        assert "| Tiny-GAP5-L1 (paper: Inception-GAP5-L1) |" in table and "/ 88.8 |" in table


def test_figure3(runs):
    _run(figure3, runs)
    folder, results, table = _outputs(runs, "figure3")
    assert (pytest.importorskip("pathlib").Path(folder) / "figure3.png").stat().st_size > 1000
    assert set(results) == set(figure3.common.PAPER_MODELS)
    assert all(0.0 <= r["cam_mass_on_true_class"] <= 1.0 for r in results.values())
    assert "| model | predicted | share of positive CAM mass on the true class |" in table


def test_figure4(runs):
    _run(figure4, runs)
    folder, results, _ = _outputs(runs, "figure4")
    import pathlib
    assert (pathlib.Path(folder) / "figure4.png").stat().st_size > 1000
    assert (pathlib.Path(folder) / "figure4_true_class.png").stat().st_size > 1000
    for values in results.values():
        assert set(values) == {"best_box_iou50_pred", "best_box_iou50_pred_threshold", "best_box_iou50_true", "best_box_iou50_true_threshold"}


def test_quickstart_reuses_models_and_reports_claims(runs, capsys):
    import os

    _run(quickstart, runs)
    _, results, table = _outputs(runs, "quickstart")
    saved = {name: os.stat(f"{runs}/models/{name}/best.keras").st_mtime_ns for name in os.listdir(f"{runs}/models")
             if os.path.isfile(f"{runs}/models/{name}/best.keras")}
    assert {os.path.basename(values["run_dir"]) for values in results["models"].values()} <= set(saved)
    _run(quickstart, runs)  # again: every model is reused, none trained or saved again, the same numbers
    assert {name: os.stat(f"{runs}/models/{name}/best.keras").st_mtime_ns for name in saved} == saved
    again = _outputs(runs, "quickstart")[1]
    assert again["models"] == results["models"] and again["one_seed_observations"] == results["one_seed_observations"]
    assert len(results["one_seed_observations"]) == len(claims.CLAIMS)
    assert "one-seed observations, not verdicts" in table and "python -m experiments.claims" in table
    assert "share of positive CAM mass on the true class" in table


def test_one_seed_observations_state_the_difference():
    base = dict(accuracy=0.5, precision=0.5, map=0.5, com_ground_truth=0.5, com_prediction=0.4, cam_mass_on_true_class=0.3)
    numbers = {name: dict(base) for name in quickstart.common.PAPER_MODELS}
    numbers["Inception-GAP5-L1"].update(precision=0.7)
    observation = claims.one_seed_observation(claims.CLAIMS[3], numbers)
    assert observation == "L1 raises the precision of GAP5: difference +20.0 points on one seed (70.0 vs 50.0)"


def test_seeds_to_decide_by_hand():
    # mean 1, sd 1: t(5) = 2.571 / sqrt(6) = 1.050 > 1, t(6) = 2.447 / sqrt(7) = 0.925 < 1, so 7 seeds.
    differences = [0.0, 1.0, 2.0]  # mean 1, sd 1
    assert claims.seeds_to_decide(differences) == 7
    assert claims.seeds_to_decide([-d for d in differences]) == 7  # either side
    assert claims.seeds_to_decide([1.0, -1.0]) is None and claims.seeds_to_decide([3.0]) is None
    assert claims.seeds_to_decide([0.001, -0.0009], most=50) == 51  # not within 50 seeds


def test_paired_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3) = 2.484138
    mean, low, high = claims.paired_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138), abs=1e-5)
    assert claims.verdict(low, high) == "cannot tell at this N"
    assert claims.verdict(*claims.paired_interval([2.0, 2.1, 1.9])[1:]) == "held"
    assert claims.verdict(*claims.paired_interval([-2.0, -2.1, -1.9])[1:]) == "did not hold"
    assert claims.verdict(*claims.paired_interval([5.0])[1:]) == "cannot tell at this N"


def test_claims_pair_seeds():
    scores = {name: [dict(accuracy=0.5 + 0.01 * seed, precision=0.5, map=0.5, com_ground_truth=0.5, com_prediction=0.5,
                          cam_mass_on_true_class=0.5) for seed in range(3)] for name in claims.common.PAPER_MODELS}
    # GAP5 beats Zhou by exactly 2 points on every seed, while both vary by seed: a paired interval of zero width.
    for seed in range(3):
        scores["Inception-GAP5"][seed]["accuracy"] = scores["Inception-GAP-Zhou"][seed]["accuracy"] + 0.02
    result = claims.assess(claims.CLAIMS[2], scores)
    assert result["difference"] == pytest.approx(0.02) and result["verdict"] == "held"
    assert result["low"] == pytest.approx(0.02) and result["high"] == pytest.approx(0.02)
    # The paper's Table 3: GAP5 75.9 against GAP-Zhou 73.7, +2.2 points, just above the 2.0-point interval.
    assert result["paper_difference"] == pytest.approx(2.2) and result["paper_difference_against_interval"] == "above"
    assert claims.paper_difference(claims.CLAIMS[3]) == pytest.approx(88.8 - 80.1)  # L1 on GAP5's precision
    assert claims.paper_difference(claims.CLAIMS[7]) is None  # CAM mass: not in the paper's tables
    assert claims.paper_size_against(1.0, 0.5, 1.5) == "inside" and claims.paper_size_against(0.2, 0.5, 1.5) == "below"
    assert claims.paper_size_against(1.0, None, None) is None
    assert "| +2.2: above: excluded |" in claims.claims_table([result], 3)


def test_claims_module_end_to_end(runs):
    _run(claims, runs, "--seeds", "2")
    _, results, table = _outputs(runs, "claims")
    assert len(results["claims"]) == len(claims.CLAIMS)
    assert all(len(result["better_values"]) == 2 for result in results["claims"])
    assert "A − B [95 % interval], points" in table


def test_grounding(runs):
    from experiments import grounding

    _run(grounding, runs, "--methods", "cam,gradcam,rise,eb,ceb")
    folder, results, table = _outputs(runs, "grounding")
    import pathlib
    baselines = results.pop("baselines")
    assert list(results) == ["Tiny-GAP5", "Tiny-GAP5-L1", "Tiny-GAP-Zhou"]
    assert set(baselines) == {"centre", "random", "contrast"}
    assert all(0.0 <= values["pointing"] <= 1.0 for values in baselines.values())
    assert "| no model | baseline: centre |" in table and "Best baseline on the pointing game" in table
    for name, per_method in results.items():
        assert (pathlib.Path(folder) / f"grounding_{name}.png").stat().st_size > 1000
        for method in grounding.METHODS:
            values = per_method[method]
            assert all(0.0 <= values[key] <= 1.0 for key, _ in grounding.SCORES)
            assert values["seconds_per_image"] > 0
    assert "| Tiny-GAP5 | eb |" in table and "| model | method | pointing game |" in table
