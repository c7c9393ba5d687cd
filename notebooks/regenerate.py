"""Run the notebooks and save them with their outputs: ``python -m notebooks.regenerate [NAME ...]``.

Each runs top to bottom in the checkout's environment at the quick settings (``--small``: the tests' settings), and is
saved with its outputs and, in its metadata, the SHA-256 of its code; the tests refuse a notebook whose code
changed after its outputs were saved.
"""

import argparse
import hashlib
import os
import sys

NOTEBOOKS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(NOTEBOOKS_DIR)
COMMAND = "python -m notebooks.regenerate"


def code_sha256(notebook):
    """SHA-256 of the notebook's code cells, in order (what its outputs were made from)."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()


def notebook_paths(names=()):
    paths = sorted(os.path.join(NOTEBOOKS_DIR, name) for name in os.listdir(NOTEBOOKS_DIR) if name.endswith(".ipynb"))
    chosen = [path for path in paths if not names or any(os.path.basename(path).startswith(name) for name in names)]
    unknown = [name for name in names if not any(os.path.basename(path).startswith(name) for path in paths)]
    if unknown:
        raise SystemExit(f"error: no notebook starts with {', '.join(unknown)}; the notebooks are "
                         f"{', '.join(os.path.basename(path) for path in paths)}.")
    return chosen


def execute(path, timeout=3600):
    """The notebook at ``path`` run in a fresh kernel (cwd: notebooks/, the checkout's mindgap first); returns it."""
    import nbformat
    from nbclient import NotebookClient

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS_DIR}}).execute()
    return notebook


def main(argv=None):
    import nbformat

    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks by the start of their name, e.g. 03 09 (default: all)")
    parser.add_argument("--small", action="store_true", help="the tests' small settings (seconds, not minutes)")
    args = parser.parse_args(argv)
    if args.small:
        os.environ["MINDGAP_NOTEBOOK_SMALL"] = "1"
    for path in notebook_paths(args.names):
        notebook = execute(path)
        notebook.metadata["mindgap"] = {"code_sha256": code_sha256(notebook), "regenerated_by": COMMAND,
                                        "settings": "small" if args.small else "quick"}
        nbformat.write(notebook, path)
        print(f"saved {os.path.relpath(path, ROOT)} with its outputs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
