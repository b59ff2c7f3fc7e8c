"""The generator's arguments, axes and grid, torch-free: what is refused (and how it is said), how a run's saves
are sorted, which networks and weights each cell gets, and the grid's layout and labels."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from backend.tools.cli.light_cli import InputError
from backend.tools.generation.generate import build_parser, check_args
from backend.tools.generation.grid import draw_grid, layout
from backend.tools.generation.plan import image_name, parse_axes, parse_axis, parse_network, run_network_files


def safetensors(path: Path, metadata: dict[str, str] | None = None) -> Path:
    header = json.dumps({"__metadata__": metadata or {}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    safetensors(out / "noto.safetensors", {"ss_steps": "30", "ss_epoch": "3"})
    safetensors(out / "noto-000002.safetensors", {"ss_steps": "20", "ss_epoch": "2"})
    safetensors(out / "noto-000001.safetensors", {"ss_steps": "10", "ss_epoch": "1"})
    (out / "noto-000001-state").mkdir()
    (out / "log.txt").write_text("x")
    return out


def test_network_weights_and_windows_paths() -> None:
    assert parse_network("a.safetensors") == ("a.safetensors", 1.0)
    assert parse_network("a.safetensors:0.5") == ("a.safetensors", 0.5)
    assert parse_network(r"C:\loras\a.safetensors") == (r"C:\loras\a.safetensors", 1.0)
    assert parse_network(r"C:\loras\a.safetensors:-1") == (r"C:\loras\a.safetensors", -1.0)
    with pytest.raises(InputError, match="finite"):
        parse_network("a.safetensors:nan")


def test_a_runs_saves_are_sorted_by_step(run: Path) -> None:
    assert [p.name for p in run_network_files(run)] == [
        "noto-000001.safetensors", "noto-000002.safetensors", "noto.safetensors"]
    axis = parse_axis(f"network={run}")
    assert axis.labels == ("noto-000001", "noto-000002", "noto")
    assert parse_axis(f"network={run}/noto-*.safetensors").labels == ("noto-000001", "noto-000002")


@pytest.mark.parametrize(("text", "says"), [
    ("weight=0,x", "--xy weight: bad value 'x'"),
    ("cfg=inf", "finite"),
    ("steps=0", "1 to 1000"),
    ("sampler=euler,warp", "unknown sampler 'warp'"),
    ("colour=red", "AXIS one of network, weight"),
    ("seed=", "at least one value"),
    ("network=missing.safetensors", "network file not found"),
])
def test_bad_axes_are_named(text: str, says: str) -> None:
    with pytest.raises(InputError, match=None) as refused:
        parse_axis(text)
    assert says in str(refused.value)


def test_two_different_axes() -> None:
    with pytest.raises(InputError, match="takes two axes"):
        parse_axes(["seed=1,2"])
    with pytest.raises(InputError, match="both axes are seed"):
        parse_axes(["seed=1", "seed=2"])
    assert parse_axis("prompt=a cat, red|a dog").values == ("a cat, red", "a dog")


def _args(tmp_path: Path, *extra: str) -> object:
    model = safetensors(tmp_path / "model.safetensors")
    return build_parser().parse_args(["--pretrained_model_name_or_path", str(model), "--outdir",
                                      str(tmp_path / "gen"), *extra])


def test_epoch_by_weight_cells(run: Path, tmp_path: Path) -> None:
    extra = safetensors(tmp_path / "style.safetensors")
    plan = check_args(_args(tmp_path, "--prompt", "a dog --w 256 --s 8", "--network", f"{extra}:0.7",
                            "--steps", "20", "--width", "128", "--seed", "5",
                            "--xy", f"network={run}", "weight=0,1"))
    assert len(plan.jobs) == 6
    cell = plan.jobs[4]  # x 1 (epoch 2), y 1 (weight 1)
    assert (cell.x, cell.y, cell.seed) == (1, 1, 5)
    assert cell.networks == ((str(extra), 0.7), (str(run / "noto-000002.safetensors"), 1.0))
    assert cell.prompt.size == (256, 512) and cell.prompt.sample_steps == 8  # the prompt's own --w, --s win
    assert cell.prompt.sample_sampler == "euler_a"
    assert plan.network_files == [str(extra), *(str(run / n) for n in (
        "noto-000001.safetensors", "noto-000002.safetensors", "noto.safetensors"))]


def test_weight_axis_without_network_axis_weighs_every_network(tmp_path: Path) -> None:
    lora = safetensors(tmp_path / "a.safetensors")
    plan = check_args(_args(tmp_path, "--prompt", "x", "--network", str(lora), "--xy", "weight=0,0.5", "cfg=4,9"))
    assert [(j.networks, j.prompt.scale) for j in plan.jobs] == [
        (((str(lora), 0.0),), 4.0), (((str(lora), 0.5),), 4.0), (((str(lora), 0.0),), 9.0), (((str(lora), 0.5),), 9.0)]


def test_images_per_prompt_count_seeds(tmp_path: Path) -> None:
    plan = check_args(_args(tmp_path, "--prompt", "x", "--prompt", "y --d 100", "--images_per_prompt", "2",
                            "--seed", "1"))
    assert [(j.prompt.prompt, j.seed) for j in plan.jobs] == [("x", 1), ("x", 2), ("y", 100), ("y", 101)]


def test_each_prompts_grid_has_cells_of_its_own(tmp_path: Path) -> None:
    plan = check_args(_args(tmp_path, "--prompt", "a dog", "--prompt", "a cat", "--xy", "seed=1,2", "cfg=4"))
    names = [image_name(plan, job, "S") for job in plan.jobs]
    assert names == ["S-x01-y01.png", "S-x02-y01.png", "S-g2-x01-y01.png", "S-g2-x02-y01.png"]
    single = check_args(_args(tmp_path, "--prompt", "x", "--images_per_prompt", "2"))
    assert [image_name(single, job, "S") for job in single.jobs] == ["S-0001.png", "S-0002.png"]


@pytest.mark.parametrize(("extra", "says"), [
    (["--prompt", "x", "--images_per_prompt", "2", "--xy", "seed=1,2", "cfg=3"], "one image per cell"),
    (["--prompt", "x", "--steps", "0"], "--steps"),
    (["--prompt", "x", "--embedding", "missing.pt"], "--embedding missing.pt: embedding file not found"),
    (["--from_file", "missing.txt"], "--from_file missing.txt: prompt file not found"),
])
def test_refused_before_loading(tmp_path: Path, extra: list[str], says: str) -> None:
    with pytest.raises(InputError) as refused:
        check_args(_args(tmp_path, *extra))
    assert says in str(refused.value)


def test_prompt_file_lines_take_the_defaults(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na cat --n blurry\n\na dog --l 3\n", encoding="utf-8")
    plan = check_args(_args(tmp_path, "--from_file", str(prompts), "--cfg", "6", "--negative_prompt", "ugly"))
    assert [(j.prompt.prompt, j.prompt.negative_prompt, j.prompt.scale) for j in plan.jobs] == [
        ("a cat", "blurry", 6.0), ("a dog", "ugly", 3.0)]


def test_grid_layout_and_labels() -> None:
    cells = [[Image.new("RGB", (64, 64), (255 * x, 0, 255 * y)) for x in range(3)] for y in range(2)]
    grid = layout(cells, ["a", "b", "a long label that wraps over lines"], ["0", "1"])
    assert grid.size == (grid.left + 3 * 64, grid.top + 2 * 64)
    image = draw_grid(cells, ["a", "b", "c"], ["0", "1"], "network", "weight")
    assert image.size == layout(cells, ["a", "b", "c"], ["0", "1"]).size
    left, top = layout(cells, ["a", "b", "c"], ["0", "1"]).origin(2, 1)
    assert image.getpixel((left + 5, top + 5)) == (255, 0, 255)  # cell (x 2, y 1) where it belongs
    assert image.getpixel((2, image.height - 2)) == (255, 255, 255)  # the label column's background
    label_area = image.crop((0, 0, image.width, layout(cells, ["a"], ["0"]).top))
    assert label_area.getextrema()[0][0] == 0  # text drawn above the cells
