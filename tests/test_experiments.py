import json

import pytest

from experiments import figure3, figure4, maps_per_class, quickstart, table2, table3, table4


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
    trained_before = sorted(os.listdir(f"{runs}/models")) if os.path.isdir(f"{runs}/models") else []
    _run(quickstart, runs)
    _, results, table = _outputs(runs, "quickstart")
    if trained_before:
        assert sorted(os.listdir(f"{runs}/models")) == trained_before  # the six models were reused, not retrained
    assert len(results["claims"]) == 8 and all(isinstance(claim["held"], bool) for claim in results["claims"])
    assert "### Did the paper's claims hold on this run?" in table
    assert "share of positive CAM mass on the true class" in table


def test_claims_are_computed_from_the_numbers():
    base = dict(accuracy=0.5, precision=0.5, map=0.5, com_ground_truth=0.5, com_prediction=0.4, cam_mass_on_true_class=0.3)
    numbers = {name: dict(base) for name in quickstart.common.PAPER_MODELS}
    numbers["Inception-GAP5-L1"].update(precision=0.7, map=0.6, cam_mass_on_true_class=0.9)
    verdicts = {claim: held for claim, held, _ in quickstart.check_claims(numbers)}
    assert verdicts["L1 raises precision of GAP5"] and verdicts["L1 raises MaP of GAP5"]
    assert not verdicts["L1 raises precision of GAP-Zhou"]
    assert verdicts["L1 CAMs are sparser than L2 CAMs on GAP5 (share of positive CAM mass on the true class)"]


def test_grounding(runs):
    from experiments import grounding

    _run(grounding, runs, "--methods", "cam,gradcam,rise,eb,ceb")
    folder, results, table = _outputs(runs, "grounding")
    import pathlib
    assert list(results) == ["Tiny-GAP5", "Tiny-GAP5-L1", "Tiny-GAP-Zhou"]
    for name, per_method in results.items():
        assert (pathlib.Path(folder) / f"grounding_{name}.png").stat().st_size > 1000
        for method in grounding.METHODS:
            values = per_method[method]
            assert all(0.0 <= values[key] <= 1.0 for key, _ in grounding.SCORES)
            assert values["seconds_per_image"] > 0
    assert "| Tiny-GAP5 | eb |" in table and "| model | method | pointing game |" in table
