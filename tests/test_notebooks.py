import base64
import os
import pathlib

import nbformat
import pytest

from notebooks.regenerate import ROOT, code_sha256, execute

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_there_are_the_notebooks():
    assert [path.stem for path in NOTEBOOKS] == ["01_quickstart", "02_regularization", "03_inference", "04_excitation_dropout",
                                                "05_guided_zoom", "06_spatiotemporal", "07_caption_grounding", "08_emotion",
                                                "09_saliency_methods"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_saved_outputs_are_the_code_s_and_show_figures(path):
    notebook = nbformat.read(path, as_version=4)
    saved = notebook.metadata.get("mindgap", {})
    assert saved.get("code_sha256") == code_sha256(notebook), (
        f"{path.name}: its code changed after its outputs were saved; run `python -m notebooks.regenerate {path.stem[:2]}`")
    figures = [base64.b64decode(output.data["image/png"]) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs if "data" in output and "image/png" in output.data]
    assert figures and all(figure.startswith(PNG_SIGNATURE) and len(figure) > 2000 for figure in figures)
    assert not [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
                if output.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MINDGAP_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MINDGAP_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", ROOT)  # this checkout's mindgap, whatever the environment installed
    notebook = execute(str(path), timeout=600)
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]
    assert not errors
