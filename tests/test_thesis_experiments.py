"""The thesis's experiments (Excitation Dropout, Guided Zoom) in their extra-small modes, and their verdict tables.

Apart from tests/test_experiments.py (the paper's tables share its trained models) so that the two files run on
different workers.
"""
import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runs"))


def test_excitation_dropout(runs):
    import pathlib

    from experiments import excitation_dropout

    arguments = ["--extra-small", "--runs-dir", runs, "--seeds", "1", "--sensitivity-seeds", "0", "--zhou-seeds", "0",
                 "--variants", "standard,excitation", "--workers", "1"]
    results = excitation_dropout.main(arguments)
    folder = pathlib.Path(runs) / "excitation_dropout-extra-small"
    assert [(run["architecture"], run["variant"]) for run in results] == [
        ("CNN-2", "standard"), ("CNN-2", "excitation"), ("Tiny-FC", "standard"), ("Tiny-FC", "excitation")]
    for run in results:
        assert len(run["test_accuracy_over_training"]) + 1 == len(run["utilization_over_training"]["neurons_on"]) >= 2
        assert 0 < run["utilization"]["neurons_on"] <= run["num_neurons"]
        assert len(run["compression"]["most"]) == 20 and run["compression"]["counts"][-1] == run["num_neurons"]
        assert run["compression"]["most"][0] == pytest.approx(run["compression"]["least"][0])  # p_c = 0: nothing off
    for name in ("generalization", "utilization", "compression"):
        assert (folder / f"{name}.png").stat().st_size > 1000
    table = (folder / "table.md").read_text()
    assert "| CNN-2 | Excitation |" in table and "81.94" in table and "conservative filters, Δ =" in table
    for run in results:  # the mask-leak probe: accuracies of masks from the true class and from a wrong one
        assert ("mask_accuracy" in run) == (run["variant"] == "excitation")
        if "mask_accuracy" in run:
            assert set(run["mask_accuracy"]) == {"true", "wrong"} and all(0 <= v <= 1 for v in run["mask_accuracy"].values())
    assert "### What the masks tell the layers above (ours)" in table and "| CNN-2 | Excitation | " in table
    assert all(run["largest_scale"] >= 1.0 for run in results)  # every kept unit is divided by a p <= 1
    assert "largest scale factor" in table and "Standard Dropout's test accuracy" in table and "beta_1 = 0.95" in table
    saved = json.loads((folder / "results.json").read_text())
    assert len(saved["runs"]) == 4 and "weight_changes" not in saved["runs"][0]
    again = excitation_dropout.main(arguments)  # every run is cached by its settings
    assert [run["test_accuracy"] for run in again] == [run["test_accuracy"] for run in results]
    with pytest.raises(ValueError, match="Unknown variant"):
        excitation_dropout.main(["--extra-small", "--runs-dir", runs, "--variants", "gaussian"])
    with pytest.raises(ValueError, match="Unknown architecture"):
        excitation_dropout.main(["--extra-small", "--runs-dir", runs, "--architectures", "VGG16"])
    assert excitation_dropout.jobs_for(2, 1, 0, ("excitation",), ("CNN-2",)) == [
        ("CNN-2", "excitation", 0.5, 0), ("CNN-2", "excitation", 0.5, 1), ("CNN-2", "excitation", 0.25, 0),
        ("CNN-2", "excitation", 0.75, 0)]


def test_excitation_dropout_tables_put_the_thesis_beside_ours():
    from experiments import excitation_dropout

    def run(variant, retain, seed, accuracy, seconds):
        return {"architecture": "CNN-2", "variant": variant, "base_retain": retain, "seed": seed, "test_accuracy": accuracy,
                "train_accuracy": 1.0, "seconds_per_step": seconds}

    results = [run("standard", 0.75, 0, 0.70, 0.010), run("standard", 0.75, 1, 0.72, 0.010), run("excitation", 0.25, 0, 0.6, 0.012),
               run("standard", 0.5, 0, 0.8, 0.010), run("excitation", 0.5, 0, 0.9, 0.012)]
    sensitivity = excitation_dropout.sensitivity_table(results)
    # the thesis's columns are dropout rates: its "0.25 Dropout" is P = 0.75
    assert "| Standard | 71.0 ± 1.4 (n=2) / 79.16 | 80.0 ± 0.0 (n=1) / 80.13 | – (n=0) / 81.19 |" \
        in sensitivity
    leak = excitation_dropout.leak_table(
        results[:4] + [{**results[4], "mask_accuracy": {"true": 0.95, "wrong": 0.55}}], ["CNN-2"])
    assert "| CNN-2 | Excitation | 90.0 ± 0.0 | 95.0 ± 0.0 | 55.0 ± 0.0 | 40.0 ± 0.0 |" in leak
    runtime = excitation_dropout.runtime_table(results, ["CNN-2"])
    assert "| CNN-2 | Excitation | 12.0 | 1.20 | 0.1885 (1.23×) |" in runtime


def test_standard_dropouts_plateau_is_the_gain_over_the_last_quarter():
    from experiments import excitation_dropout

    def run(seed, curve):
        return {"architecture": "CNN-2", "variant": "standard", "base_retain": 0.5, "seed": seed,
                "test_accuracy_over_training": curve}

    # 8 epochs: the epoch ending 3/4 of training is the 6th; mean curve there 0.700, at the end 0.704: +0.4 points
    rising = [run(0, [0.1, 0.3, 0.5, 0.6, 0.65, 0.69, 0.70, 0.70]), run(1, [0.1, 0.3, 0.5, 0.6, 0.65, 0.71, 0.70, 0.708])]
    check = excitation_dropout.standard_plateau(rising)
    assert check["from_epoch"] == 6 and check["epochs"] == 8
    assert check["gain_points"] == pytest.approx(0.4) and check["plateaued"]
    still = [run(0, [0.1, 0.3, 0.5, 0.6, 0.65, 0.69, 0.70, 0.72])]  # +3 points: not plateaued
    assert excitation_dropout.standard_plateau(still)["gain_points"] == pytest.approx(3.0)
    assert not excitation_dropout.standard_plateau(still)["plateaued"]
    assert "not plateaued" in excitation_dropout.plateau_text(excitation_dropout.standard_plateau(still))
    assert excitation_dropout.standard_plateau([]) is None


def test_excitation_dropout_verdicts_pair_seeds_and_flip_the_peak():
    from experiments import excitation_dropout

    def run(variant, seed, accuracy, peak):
        return {"architecture": "CNN-2", "variant": variant, "base_retain": 0.5, "seed": seed, "test_accuracy": accuracy,
                "utilization": {"neurons_on": 1000, "peak_p_eb": peak, "activation_entropy": 3.0, "p_eb_entropy": 3.0},
                "compression": {"levels": [0.0, 0.5], "most": [0.9, 0.4], "least": [0.9, 0.8], "random": [0.9]}}

    results = [run("standard", 0, 0.80, 0.011), run("standard", 1, 0.70, 0.012), run("standard", 2, 0.75, 0.010),
               run("excitation", 2, 0.77, 0.004), run("excitation", 0, 0.82, 0.003), run("excitation", 1, 0.72, 0.003)]
    rows = {row["measure"]: row for row in excitation_dropout.thesis_verdicts(results, ["CNN-2"])}
    assert set(rows) == {"test_accuracy", "neurons_on", "peak_p_eb", "activation_entropy", "p_eb_entropy",
                         "compression_most_half"}  # no adaptive, none or curriculum runs: those claims are left out
    accuracy = rows["test_accuracy"]
    assert accuracy["better_values"] == pytest.approx([0.82, 0.72, 0.77]) and accuracy["verdict"] == "held"  # +2 each seed
    assert rows["peak_p_eb"]["difference"] == pytest.approx(-(0.0033333 - 0.011), abs=1e-6)  # lower peak: positive
    assert rows["peak_p_eb"]["verdict"] == "held" and rows["neurons_on"]["verdict"] == "cannot tell at this N"


def test_guided_zoom(runs):
    import pathlib

    from experiments import guided_zoom
    from mindgap.data.scenes import PAIR_CLASS_NAMES
    from mindgap.guided_zoom import Refiner

    results = guided_zoom.main(["--extra-small", "--runs-dir", runs, "--seeds", "1", "--workers", "1"])
    folder = pathlib.Path(runs) / "guided_zoom-extra-small"
    (run,) = results
    assert {(row["pool"], row["k"], row["rounds"]) for row in run["refined"]} == {
        *(("ceb", k, rounds) for k in (3, 5) for rounds in (0, 1, 2)), ("ensemble", 3, 0), ("ensemble", 5, 0)}
    for row in run["refined"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and sum(row["weights"]) == pytest.approx(1.0)
    assert run["conventional"]["test"]["top1"] <= run["conventional"]["test"]["top3"] <= run["conventional"]["test"]["top5"]
    assert run["evidence"]["ensemble"]["counts"].keys() <= {f"{method}/l0" for method in ("ceb", "gradcam", "rise")}
    for name in ("figure6_3", "figure6_5"):
        assert (folder / f"{name}.png").stat().st_size > 1000
    table = (folder / "table.md").read_text()
    headline, ours = table.split("### Ours")
    row = next(row for row in run["refined"] if (row["pool"], row["k"], row["rounds"]) == ("ceb", 5, 2))
    assert (f"| Guided Zoom | cEB | 5 | 2 | 0.4, 0.3, 0.2, 0.1 (fixed) | {100 * row['test_accuracy_thesis_weights']:.1f} ± 0.0 |"
            in headline) and "85.4 / 88.5 / 89.0" in headline
    assert "| Ensemble Guided Zoom | cEB + Grad-CAM + RISE | 5 | 0 | 0.4, 0.3 (fixed) |" in headline
    assert "| Guided Zoom | cEB | 5 | 1 |" not in headline and "| Guided Zoom | cEB | 5 | 1 |" in ours  # other L: ours
    assert "RISE with 8 masks per image" in headline and "embedded pairs set" in table
    assert "### The thesis's claims over 1 seed(s)" in table and "adversarial erasing helps" in table
    refiner = Refiner.load(folder / "seed0" / "refiner")
    assert refiner.methods == ("ceb",) and refiner.rounds == 2 and refiner.top_k == 5 and refiner.source_size == 40
    assert tuple(refiner.class_names) == PAIR_CLASS_NAMES
    again = guided_zoom.main(["--extra-small", "--runs-dir", runs, "--seeds", "1", "--workers", "1"])  # cached by seed
    assert again[0]["refined"] == run["refined"]


def test_guided_zoom_verdicts_pair_each_refiner_with_its_seeds_conventional_cnn():
    from experiments import guided_zoom

    def seed(conventional, ceb2, ceb0, ensemble):
        rows = [{"pool": "ceb", "k": 5, "rounds": 2, "test_accuracy_thesis_weights": ceb2},
                {"pool": "ceb", "k": 5, "rounds": 0, "test_accuracy_thesis_weights": ceb0},
                {"pool": "ensemble", "k": 5, "rounds": 0, "test_accuracy_thesis_weights": ensemble}]
        return {"conventional": {"test": {"top1": conventional}}, "refined": rows}

    rows = guided_zoom.thesis_verdicts([seed(0.40, 0.38, 0.39, 0.41), seed(0.44, 0.41, 0.43, 0.45),
                                        seed(0.42, 0.40, 0.40, 0.43)])
    by_claim = {row["claim"].split(" (")[0] + str(row["claim"].count("L = 2 beats")): row for row in rows}
    guided = by_claim["Guided Zoom0"]
    assert guided["difference"] == pytest.approx(-0.0233333, abs=1e-6) and guided["verdict"] == "did not hold"
    assert "+3.1 points on CUB" in guided["claim"]  # Table 6.1: 85.4 against 82.3 at k = 5
    assert by_claim["Ensemble Guided Zoom0"]["better_values"] == pytest.approx([0.41, 0.45, 0.43])
    erasing = next(row for row in rows if "erasing" in row["claim"])
    assert erasing["difference"] == pytest.approx((-0.01 - 0.02 + 0.0) / 3)


def test_excitation_dropout_figures_are_readable(monkeypatch, tmp_path):
    from experiments import excitation_dropout

    figures = {}

    def keep(figure, path, title, bottom=0.0):
        figures[os.path.basename(path)] = (figure, title)
        return path

    monkeypatch.setattr(excitation_dropout, "_save", keep)
    levels = [0.0, 0.5, 0.9]
    runs = [{"architecture": "CNN-2", "variant": variant, "base_retain": 0.5, "seed": seed,
             "test_accuracy_over_training": [0.5, 0.9 + 0.01 * index + 0.002 * seed],
             "utilization_over_training": {name: [1.0, 2.0, 3.0] for name, _ in excitation_dropout.METRICS},
             "compression": {"levels": levels, "counts": [0, 10, 20], "most": [0.9, 0.5, 0.1], "least": [0.9, 0.8, 0.2],
                             "random": [0.9, 0.7, 0.1]}}
            for index, variant in enumerate(excitation_dropout.VARIANTS) for seed in (0, 1)]
    excitation_dropout.plot_generalization(runs, ["CNN-2"], str(tmp_path / "generalization.png"), "a long caption " * 40)
    excitation_dropout.plot_compression(runs, ["CNN-2"], str(tmp_path / "compression.png"), "a long caption " * 40)
    figure, title = figures["generalization.png"]
    assert "\n" not in title and len(title) < 100  # the settings are table.md's caption, not a block over the plot
    assert figure.get_size_inches()[0] * 100 >= 1000  # one model still gets a wide figure
    final = next(axis for axis in figure.axes if axis.get_title() == "CNN-2: after the last epoch")  # one row per variant: the last epoch's mean of the two seeds, in the variants' order
    assert [label.get_text() for label in final.get_yticklabels()] == [excitation_dropout.LABELS[variant]
                                                                       for variant in excitation_dropout.VARIANTS]
    points = [line.get_xdata()[0] for line in final.lines if len(line.get_xdata()) == 1]  # per variant: mean, its two caps
    sd = np.std([90.0, 90.2], ddof=1)  # the two seeds differ by 0.2 points
    expected = [[mean, mean - sd, mean + sd] for mean in (100 * (0.9 + 0.01 * index) + 0.1
                                                          for index in range(len(excitation_dropout.VARIANTS)))]
    np.testing.assert_allclose(points, np.ravel(expected))
    figure, _ = figures["compression.png"]
    assert [axis.get_title() for axis in figure.axes] == ["CNN-2: most relevant off", "CNN-2: least relevant off",
                                                         "CNN-2: random neurons off"]
