"""`python -m backend.tools.generate` on the tiny SD 1.5 model: a 2-epoch LoRA run's saves x weight as an X/Y grid.
Weight 0 is the base image in every column; the two epochs differ; the grid PNG carries its parameters and a JSON
lies beside it; one progress step per image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.training.progress import parse_progress_line
from tests.end_to_end.helpers import _ENV_AT_START, REPO, trainer_env
from tests.forked_commands import run_module
from tests.tiny_models import TinyModels
from tests.tools.generation.two_epochs import train_two_epochs


@pytest.fixture(scope="module")
def two_epochs(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_two_epochs(tiny.get("sd15").path, tmp_path_factory.mktemp("epochs"))[0]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_epoch_by_weight_grid(two_epochs: Path, tiny: TinyModels, tmp_path: Path) -> None:
    outdir = tmp_path / "gen"
    result = run_module("backend.tools.generate", [
        "--pretrained_model_name_or_path", str(tiny.get("sd15").path), "--outdir", str(outdir),
        "--prompt", "sks dog --w 64 --h 64 --s 4", "--seed", "3", "--device", "cpu",
        "--xy", f"network={two_epochs}", "weight=0,1",
    ], trainer_env(), REPO, 300, server_env=trainer_env(_ENV_AT_START))
    assert result.returncode == 0, result.stderr[-3000:]
    events = [e for e in map(parse_progress_line, result.stdout.splitlines()) if e is not None]
    steps = [e for e in events if e["event"] == "step"]
    assert [(e["step"], e["total"]) for e in steps] == [(n, 4) for n in range(1, 5)]
    (grid,) = outdir.glob("*-grid.png")
    record = json.loads(grid.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["x"]["labels"] == ["tiny-000001", "tiny"]  # the epoch save, then the last save
    assert record["y"] == {"axis": "weight", "values": [0.0, 1.0], "labels": ["0", "1"]}
    assert json.loads(Image.open(grid).text["parameters"]) == record
    cells = {(c["x"], c["y"]): outdir / c["file"] for c in record["cells"]}
    columns = len(record["x"]["values"])
    base = pixels(cells[(0, 0)])
    for column in range(columns):  # weight 0: the base model's image, whatever the epoch
        assert np.array_equal(pixels(cells[(column, 0)]), base)
    trained = [pixels(cells[(column, 1)]) for column in range(columns)]
    assert not np.array_equal(trained[0], base)  # the LoRA changes the image
    assert not np.array_equal(trained[0], trained[-1])  # and the epochs differ
    assert 'Networks: "tiny-000001:1"' in Image.open(cells[(0, 1)]).text["parameters"]
    assert Image.open(grid).size[0] > 64 * columns  # the label column
