"""The Generate page's values -> `python -m backend.tools.generate`'s argv (gui/generate/generate_args.py): what
the page passes, every problem of bad values named at once, the tool's own checks run before a start, a History
run's saves as an X axis; what a finished run shows (generate_results.py); the remembered form (generate_form.py).
No browser, no torch."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from backend.tools.generation.generate import build_parser
from gui.generate import generate_form
from gui.generate.generate_args import (
    DEFAULTS,
    GenerateInputError,
    check_argv,
    generate_argv,
    run_saves,
    saves_axis_text,
)
from gui.generate.generate_results import run_results, servable


def values(**changes: object) -> dict[str, object]:
    return {**DEFAULTS, "pretrained_model_name_or_path": "/models/base", "outdir": "/tmp/gen", "prompt": "a dog",
            **changes}  # fmt: skip


def flags(argv: list[str]) -> list[str]:
    assert argv[1:3] == ["-m", "backend.tools.generate"]
    return argv[3:]


def test_the_page_values_become_the_tools_flags() -> None:
    argv = generate_argv(values(
        network_1="/loras/style.safetensors", weight_1="0.6", network_2="", weight_2="2",
        network_3=r"C:\loras\b.safetensors", weight_3="", embedding="/emb/neg.pt\n\n/emb/sks.safetensors",
        prompt="sks dog --w 64 --h 64\n\n  a cat --n blurry  ", negative_prompt="lowres", width="64", height="64.0",
        steps="2", cfg="6.5", seed="7", sampler="ddim", device="cpu", v_parameterization=True,
    ), python="py")  # fmt: skip
    assert argv[0] == "py"
    assert flags(argv) == [
        "--pretrained_model_name_or_path", "/models/base", "--outdir", "/tmp/gen", "--v_parameterization",
        "--network", "/loras/style.safetensors:0.6", "--network", r"C:\loras\b.safetensors:1",
        "--embedding", "/emb/neg.pt", "--embedding", "/emb/sks.safetensors",
        "--prompt", "sks dog --w 64 --h 64", "--prompt", "a cat --n blurry", "--negative_prompt", "lowres",
        "--width", "64", "--height", "64", "--steps", "2", "--seed", "7", "--images_per_prompt", "1", "--cfg", "6.5",
        "--sampler", "ddim", "--precision", "fp16", "--device", "cpu",
    ]  # fmt: skip
    # and the tool's parser reads them as the page meant
    args = build_parser().parse_args(flags(argv))
    assert args.network == [["/loras/style.safetensors:0.6"], [r"C:\loras\b.safetensors:1"]]
    assert (args.width, args.height, args.cfg, args.seed) == (64, 64, 6.5, 7)


def test_axes_values_one_a_line_or_comma_separated() -> None:
    argv = generate_argv(values(x_axis="network", x_values="/out/a-000001.safetensors\n/out/a.safetensors\n",
                                y_axis="weight", y_values="0, 0.5\n1"))  # fmt: skip
    assert flags(argv)[-3:] == [
        "--xy",
        "network=/out/a-000001.safetensors,/out/a.safetensors",
        "weight=0, 0.5,1",
    ]
    argv = generate_argv(
        values(x_axis="prompt", x_values="a dog, smiling\na cat", y_axis="seed", y_values="1,2")
    )
    assert flags(argv)[-3:] == ["--xy", "prompt=a dog, smiling|a cat", "seed=1,2"]
    assert "--xy" not in generate_argv(values(x_axis="", y_axis=""))


def test_bad_values_are_all_named_before_anything_starts() -> None:
    with pytest.raises(GenerateInputError) as raised:
        generate_argv(values(
            pretrained_model_name_or_path=" ", outdir="", prompt="\n \n", network_2="/l.safetensors", weight_2="strong",
            steps="2.5", cfg="high", seed="", x_axis="network", x_values="/out",
        ))  # fmt: skip
    problems = raised.value.problems
    assert len(problems) == 7, problems
    assert problems[:3] == [
        "--pretrained_model_name_or_path: choose the base model (a .safetensors/.ckpt file or a diffusers folder)",
        "--outdir: choose the folder the images are written to",
        "--prompt: write at least one prompt (one a line)",
    ]
    assert "network 2 (/l.safetensors): the weight 'strong' is not a number" in problems[3]
    assert "--steps: '2.5' is not a whole number" in problems
    assert "--cfg: 'high' is not a number" in problems
    assert problems[-1].startswith("X/Y grid: choose both an X and a Y axis")
    with pytest.raises(GenerateInputError, match=r"the Y axis \(weight\) has no values"):
        generate_argv(values(x_axis="seed", x_values="1", y_axis="weight", y_values=" \n"))
    with pytest.raises(GenerateInputError, match="weight 'nan' is not a number"):
        generate_argv(values(network_1="/l.safetensors", weight_1="nan"))


def test_the_tools_own_checks_run_in_the_gui(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("tiny-000001.safetensors", "tiny.safetensors"):
        (run / name).write_bytes(b"")
    (run / "tiny-state").mkdir()  # a state folder is no network file
    page = values(pretrained_model_name_or_path=str(model), outdir=str(tmp_path / "gen"), prompt="a dog --s 2",
                  seed="3", x_axis="network", x_values=str(run), y_axis="weight", y_values="0,1")  # fmt: skip
    plan = check_argv(generate_argv(page))
    assert (plan.x.labels, plan.y.labels) == (("tiny-000001", "tiny"), ("0", "1"))
    assert [job.networks for job in plan.jobs][::3] == [((str(run / "tiny-000001.safetensors"), 0.0),),
                                                        ((str(run / "tiny.safetensors"), 1.0),)]  # fmt: skip
    with pytest.raises(GenerateInputError, match="--network .*missing.safetensors: network file not found"):
        check_argv(generate_argv({**page, "network_1": str(tmp_path / "missing.safetensors")}))
    with pytest.raises(GenerateInputError, match="model not found"):
        check_argv(
            generate_argv({**page, "pretrained_model_name_or_path": str(tmp_path / "none.safetensors")})
        )
    with pytest.raises(GenerateInputError, match="--images_per_prompt 2 with --xy"):
        check_argv(generate_argv({**page, "images_per_prompt": "2"}))
    with pytest.raises(GenerateInputError, match="--width"):  # a range the tool declares (64 to 8192)
        check_argv(generate_argv({**page, "width": "8"}))
    with pytest.raises(GenerateInputError, match="sampler"):  # argparse's refusal, not a sys.exit
        check_argv(generate_argv({**page, "sampler": "warp_drive"}))


def test_a_recorded_runs_saves_make_the_x_axis(tmp_path: Path) -> None:
    saves = [tmp_path / "a-000001.safetensors", tmp_path / "a.safetensors"]
    for path in saves:
        path.write_bytes(b"")
    (tmp_path / "a-000001-state").mkdir()
    record = {"checkpoints": [str(saves[0]), str(tmp_path / "a-000001-state"), str(tmp_path / "gone.safetensors"),
                              str(saves[1])], "output": str(saves[1])}  # fmt: skip
    assert run_saves(record) == [str(path) for path in saves]
    assert run_saves({"checkpoints": None, "output": None}) == []
    assert saves_axis_text(run_saves(record)) == "\n".join(map(str, saves))
    # values are comma-separated: a path with a comma is given as its folder (its network files in save order)
    assert (
        saves_axis_text(["/runs/dog, v2/a-000001.safetensors", "/runs/dog, v2/a.safetensors"])
        == "/runs/dog, v2"
    )


def test_a_finished_runs_images_and_grid(tmp_path: Path) -> None:
    stamp = "20261204-101010"
    for x in (1, 2):
        for y in (1, 2):
            (tmp_path / f"{stamp}-x{x:02d}-y{y:02d}.png").write_bytes(b"")
    (tmp_path / f"{stamp}-g2-x01-y01.png").write_bytes(b"")  # the second prompt's grid
    grid = tmp_path / f"{stamp}-grid.png"
    for path in (grid, tmp_path / f"{stamp}-grid-2.png", tmp_path / "20261204-111111-x01-y01.png"):
        path.write_bytes(b"")
    found = run_results({"status": "finished", "output": str(grid), "started_at": time.time()})
    assert found.grid == str(grid)
    assert [Path(p).name for p in found.images] == [
        f"{stamp}-x01-y01.png",
        f"{stamp}-x02-y01.png",
        f"{stamp}-x01-y02.png",
        f"{stamp}-x02-y02.png",
        f"{stamp}-g2-x01-y01.png",
    ]  # grid by grid, row by row; another run's cells left out
    assert [Path(p).name for p in found.grids] == [f"{stamp}-grid.png", f"{stamp}-grid-2.png"]
    assert run_results({"status": "failed", "output": str(grid)}).images == []
    old, new = tmp_path / "20261204-090000-0001.png", tmp_path / "20261204-101011-0001.png"
    for path in (old, new, tmp_path / "notes.png"):
        path.write_bytes(b"")
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # an earlier run's image in the same folder
    found = run_results({"status": "finished", "output": str(tmp_path), "started_at": time.time() - 60})
    assert (found.images, found.grid) == ([str(new)], None)


def test_the_form_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOHYA_GUI_STATE_DIR", str(tmp_path))
    assert generate_form.load_form() == {}
    generate_form.save_form(values(prompt="a dog\na cat", v_parameterization=True, unknown="x"))
    loaded = generate_form.load_form()
    assert (
        loaded["prompt"] == "a dog\na cat"
        and loaded["v_parameterization"] is True
        and "unknown" not in loaded
    )
    bad = {"steps": [2], "v_parameterization": "yes", "outdir": "a\tb", "seed": 5, "negative_prompt": "ok"}
    generate_form.form_path().write_text(json.dumps(bad), encoding="utf-8")
    assert generate_form.load_form() == {"seed": 5, "negative_prompt": "ok"}
    generate_form.form_path().write_text("{", encoding="utf-8")
    assert generate_form.load_form() == {}


def test_images_outside_the_servable_folders_are_copied(tmp_path: Path) -> None:
    image = tmp_path / "out" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"png")
    assert servable(str(image)) == str(image)  # under the temp folder: Gradio sends it as it is
    copy = servable(str(image), roots=[tmp_path / "elsewhere"], folder=tmp_path / "served")
    assert copy is not None and Path(copy).parent == tmp_path / "served" and Path(copy).read_bytes() == b"png"
    assert servable(str(tmp_path / "gone.png"), roots=[], folder=tmp_path / "served") is None
