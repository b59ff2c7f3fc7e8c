"""Resume after SIGKILL: the run continues at the right step with the same optimizer state, and
its losses and final LoRA match an uninterrupted run with the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from .helpers import base_flags, run_trainer, run_until_state_then_kill


def flags(model: Path, train_dir: Path, out: Path, *extra: str) -> list[str]:
    return base_flags(model, train_dir, out, "--max_train_steps", "8", "--learning_rate", "1e-3",
                      "--save_every_n_steps", "4", "--save_state", "--network_dim", "4", *extra)


def optimizer_state(folder: Path) -> dict:
    return torch.load(folder / "optimizer.bin", map_location="cpu", weights_only=False)["state"]


@pytest.fixture(scope="module")
def runs(tiny, train_dir, tmp_path_factory):
    model = tiny.get("sd15").path
    full_out = tmp_path_factory.mktemp("full")
    full = run_trainer("train_network", *flags(model, train_dir, full_out))
    assert full.returncode == 0, full.stderr[-3000:]

    killed_out = tmp_path_factory.mktemp("killed")
    killed_events = run_until_state_then_kill("train_network", flags(model, train_dir, killed_out))
    state = killed_out / "tiny-step00000004-state"
    resumed = run_trainer("train_network", *flags(model, train_dir, killed_out, "--resume", str(state)))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return full, full_out, killed_events, resumed, killed_out


def test_killed_run_leaves_a_complete_state(runs):
    _, _, killed_events, _, killed_out = runs
    assert [e["step"] for e in killed_events if e["event"] == "step"][:4] == [1, 2, 3, 4]
    state = killed_out / "tiny-step00000004-state"
    assert (state / "train_state.json").is_file()
    assert not list(killed_out.glob("*.partial"))


def test_resume_continues_at_the_next_step_with_the_same_optimizer_state(runs):
    _, full_out, _, resumed, killed_out = runs
    assert resumed.of("start")[0]["initial_step"] == 4
    assert [e["step"] for e in resumed.of("step")] == [5, 6, 7, 8]
    full_state = optimizer_state(full_out / "tiny-step00000004-state")
    killed_state = optimizer_state(killed_out / "tiny-step00000004-state")
    assert full_state.keys() == killed_state.keys()
    for index, values in full_state.items():
        for name, tensor in values.items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(killed_state[index][name])), (index, name)


def test_resumed_losses_and_weights_match_the_uninterrupted_run(runs):
    full, full_out, _, resumed, killed_out = runs
    full_losses, resumed_losses = full.losses(), resumed.losses()
    for step in (5, 6, 7, 8):
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), step
    expected = load_file(str(full_out / "tiny.safetensors"))
    actual = load_file(str(killed_out / "tiny.safetensors"))
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6)
