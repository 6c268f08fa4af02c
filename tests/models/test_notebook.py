"""Executes examples/supcon_keras_fit.ipynb headless with a reduced budget so it never goes stale."""

import pathlib
import sys

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "examples" / "supcon_keras_fit.ipynb"


def test_notebook_runs_headless(tmp_path, monkeypatch):
    # The kernel inherits this environment: one epoch of two steps, CPU only.
    monkeypatch.setenv("SUPCON_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("SUPCON_NOTEBOOK_STEPS", "2")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("MPLBACKEND", "agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The committed notebook carries the outputs of a full run.
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    # The "python3" kernel is ipykernel's native one: it runs with this interpreter
    # (the project's virtual environment), see test_kernel_is_this_interpreter.
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    text = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "linear evaluation test accuracy" in text
    assert "['embedding', 'logits', 'probabilities', 'projection']" in text
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]



def test_kernel_is_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec("python3").argv
    assert argv[0] in (sys.executable, "python", "python3") or pathlib.Path(argv[0]).resolve() == pathlib.Path(sys.executable).resolve()
