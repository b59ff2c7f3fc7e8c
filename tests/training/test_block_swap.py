"""--blocks_to_swap: the swapper's moves, its results against the unswapped model (bit for bit on the CPU),
gradient checkpointing, and the limits and errors of the option."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from transformers import CLIPTextModel

from backend.families.flux.family import FAMILY as FLUX
from backend.families.sd3.family import FAMILY as SD3
from backend.families.stable_diffusion.family import FAMILY as SD
from backend.networks import lora
from backend.options.schema import options_for
from backend.training.block_swap import (
    BlockSwapError,
    BlockSwapper,
    move_except,
    swap_plan,
    swapped_flags,
    swapper_for,
)
from backend.training.block_swap_options import SWAP_ON_CPU_ENV, BlockSwapConfig, block_swap_problems
from tests.networks.helpers import clip_config


def transformer(double: int = 4, single: int = 6) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=double, num_single_layers=single, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens, text = 4, 3
    img_ids = torch.stack([torch.zeros(tokens), torch.arange(tokens) // 2, torch.arange(tokens) % 2], dim=-1)
    return {
        "hidden_states": torch.randn(2, tokens, 4, generator=g),
        "encoder_hidden_states": torch.randn(2, text, 32, generator=g),
        "pooled_projections": torch.randn(2, 32, generator=g),
        "timestep": torch.tensor([0.5, 0.25]),
        "guidance": torch.tensor([3.5, 3.5]),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(text, 3),
    }


def mmdit(blocks: int = 4) -> SD3Transformer2DModel:
    """A tiny SD 3.5 Medium-style MMDiT (its first block with dual attention, the last context-pre-only)."""
    return SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=blocks, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=32,
        pos_embed_max_size=16, dual_attention_layers=(0,),
    )


def mmdit_inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"hidden_states": torch.randn(2, 4, 8, 8, generator=g),
            "encoder_hidden_states": torch.randn(2, 3, 32, generator=g),
            "pooled_projections": torch.randn(2, 32, generator=g), "timestep": torch.tensor([500.0, 250.0])}


# Per family: the tiny denoiser, its inputs, the family, a --blocks_to_swap value, the swapped block indices (laid
# end to end) it gives, and whether the gradients are bit-identical. SD 3.5's are equal up to float rounding: a
# swapped linear is one autograd node where aten's linear is several (view, addmm, view), which changes the order
# in which autograd sums the gradients that reach the joint attention's inputs.
SWAP_CASES = {
    "flux": (transformer, inputs, FLUX, 4, [2, 3, 6, 7, 8, 9], True),  # 2 double + 4 single blocks
    "sd3": (mmdit, mmdit_inputs, SD3, 2, [2, 3], False),  # the last 2 joint blocks
}


def same_gradients(got: list[torch.Tensor], expected: list[torch.Tensor], exact: bool) -> bool:
    if exact:
        return all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-9) for a, b in zip(got, expected, strict=True))


def with_lora(model: FluxTransformer2DModel):
    """A LoRA with non-zero up weights (so its gradients reach every layer), the base frozen."""
    torch.manual_seed(0)
    network = lora.create_network(1.0, 4, 2.0, None, [CLIPTextModel(clip_config())], model,
                                  train_t5xxl="False")
    network.apply_to(None, model, False, True)
    with torch.no_grad():
        for param in network.parameters():
            param.normal_(0, 0.02)
    model.requires_grad_(False)
    return network


def loss_and_grads(model, network, checkpointing: bool = False, make_inputs=inputs
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    out = model(**make_inputs()).sample
    loss = (out.float() ** 2).mean()
    network.zero_grad()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in network.parameters() if p.requires_grad]


def most_on_device(moves: list[tuple[str, int]]) -> int:
    """The most swapped blocks on the device (loaded or being copied) at once along `moves`."""
    on, most = set(), 0
    for what, index in moves:
        if what == "evict":
            on.discard(index)
        else:
            on.add(index)
        most = max(most, len(on))
    return most


def swapped(model: torch.nn.Module, blocks_to_swap: int, family=FLUX, trained: bool = False) -> BlockSwapper:
    groups = family.swap_groups(model)
    counts = family.blocks_to_swap_split(blocks_to_swap, [len(g) for g in groups])
    return swapper_for(groups, counts, torch.device("cpu"), record_moves=True, trained=trained).install()


def test_flux_splits_blocks_as_sd_scripts_and_keeps_two_of_each_group() -> None:
    assert FLUX.blocks_to_swap_split(35, [19, 38]) == [17, 36]
    assert FLUX.blocks_to_swap_split(3, [19, 38]) == [1, 4]
    assert FLUX.blocks_to_swap_limit([len(g) for g in FLUX.swap_groups(transformer(4, 6))]) == 4
    assert FLUX.blocks_to_swap_limit(FLUX.swap_group_sizes(transformer(4, 6).config)) == 4
    assert FLUX.blocks_to_swap_limit([19, 38]) == 35 and FLUX.blocks_to_swap_limit([1, 2]) == 0
    assert SD.blocks_to_swap_limit(SD.swap_group_sizes({"num_layers": 4})) == 0
    # sd-scripts' MMDiT.enable_block_swap: the last N joint blocks, at most all but two.
    assert SD3.blocks_to_swap_limit(SD3.swap_group_sizes({"num_layers": 38})) == 36  # SD 3.5 Large
    assert SD3.blocks_to_swap_limit(SD3.swap_group_sizes(mmdit(24).config)) == 22  # Medium
    assert SD3.blocks_to_swap_split(10, [24]) == [10]
    assert swapped_flags([4, 6], [1, 2]) == [False] * 3 + [True] + [False] * 4 + [True] * 2


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("case", sorted(SWAP_CASES))
def test_swapped_blocks_give_the_same_loss_and_gradients_bit_for_bit(case: str, checkpointing: bool) -> None:
    build, make_inputs, family, blocks_to_swap, expected_swapped, exact = SWAP_CASES[case]
    torch.manual_seed(0)
    plain = build()
    swapped_model = copy.deepcopy(plain)
    expected_loss, expected_grads = loss_and_grads(plain, with_lora(plain), checkpointing, make_inputs)

    network = with_lora(swapped_model)
    swapper = swapped(swapped_model, blocks_to_swap, family)
    assert sorted(swapper.state) == expected_swapped
    loss, grads = loss_and_grads(swapped_model, network, checkpointing, make_inputs)
    assert torch.equal(loss, expected_loss), "the forward pass is the same to the bit"
    assert same_gradients(grads, expected_grads, exact)
    assert swapper.loaded_blocks == [], "every swapped block leaves the device after the backward"
    assert most_on_device(swapper.moves) == 2
    assert all(p.numel() == 0 for p in family.swap_groups(swapped_model)[-1][-1].parameters()), \
        "dropped weights are empty stand-ins on the CPU test path"
    assert all(p.numel() > 0 for p in network.parameters()), "LoRA weights are never moved"


def test_moves_follow_the_forward_then_the_backward_order() -> None:
    torch.manual_seed(0)
    model = transformer()
    network = with_lora(model)
    swapper = swapped(model, 2)  # double block 3, single blocks 8 and 9 (indices in the laid-out order)
    loss_and_grads(model, network)
    forward = [("prefetch", 3), ("load", 3), ("evict", 3), ("prefetch", 8), ("load", 8), ("prefetch", 9),
               ("evict", 8), ("load", 9), ("evict", 9)]
    # Block 8's output gradient is block 9's input gradient: 9 is dropped before 8 is used. Block 3 is
    # fetched when block 4's backward starts. Never more than two swapped blocks on the device.
    backward = [("load", 9), ("prefetch", 8), ("evict", 9), ("load", 8), ("evict", 8), ("prefetch", 3), ("load", 3),
                ("evict", 3)]
    assert swapper.moves == forward + backward


def test_inference_without_grad_evicts_after_each_block_and_remove_restores() -> None:
    torch.manual_seed(0)
    model = transformer().eval()
    with torch.no_grad():
        expected = model(**inputs()).sample
    swapper = swapped(model, 2)
    with torch.no_grad():
        assert torch.equal(model(**inputs()).sample, expected)
    assert swapper.loaded_blocks == []
    assert ("load", 9) in swapper.moves and swapper.moves[-1] == ("evict", 9)
    swapper.remove()
    with torch.no_grad():
        assert torch.equal(model(**inputs()).sample, expected)


def test_move_except_keeps_the_swapped_blocks_where_they_are() -> None:
    model = transformer()
    kept = [model.single_transformer_blocks[-1]]
    move_except(model, kept, "meta", torch.bfloat16)
    assert model.x_embedder.weight.device.type == "meta"
    assert model.single_transformer_blocks[0].proj_out.weight.device.type == "meta"
    last = model.single_transformer_blocks[-1].proj_out.weight
    assert last.device.type == "cpu" and last.dtype == torch.bfloat16


def test_swap_plan_limits_and_refusals() -> None:
    model = transformer()
    plan = swap_plan(FLUX, model, 4)
    assert plan.counts == [2, 4] and len(plan.blocks) == 6
    with pytest.raises(BlockSwapError, match="at most 4. 5 would swap 2 of 4, 6 of 6 blocks"):
        swap_plan(FLUX, model, 5)
    with pytest.raises(BlockSwapError, match="not supported"):
        swap_plan(SD, torch.nn.Linear(1, 1), 2)


def test_preflight_refuses_compile_and_warns_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWAP_ON_CPU_ENV, raising=False)
    errors, warnings = block_swap_problems(BlockSwapConfig(2), "cpu", torch_compile=True)
    assert len(errors) == 1 and "--torch_compile" in errors[0]
    assert len(warnings) == 1 and "no CUDA GPU, so nothing is swapped" in warnings[0]
    assert block_swap_problems(BlockSwapConfig(2), "cuda", torch_compile=False) == ([], [])
    assert block_swap_problems(BlockSwapConfig(None), "cpu", torch_compile=True) == ([], [])
    assert not BlockSwapConfig(2).runs_on("cpu") and BlockSwapConfig(2).runs_on("cuda")
    monkeypatch.setenv(SWAP_ON_CPU_ENV, "1")
    assert block_swap_problems(BlockSwapConfig(2), "cpu", torch_compile=False) == ([], [])
    assert BlockSwapConfig(2).runs_on("cpu") and not BlockSwapConfig(0).runs_on("cuda")


def test_the_option_belongs_to_the_flux_and_sd3_commands() -> None:  # FLUX.1 and Chroma's, SD 3.5's
    for command in ("flux_train_network", "flux_train", "sd3_train_network", "sd3_train"):
        assert "blocks_to_swap" in options_for(command), command
    for command in ("sdxl_train_network", "train_network", "sdxl_train"):
        assert "blocks_to_swap" not in options_for(command), command


def test_chroma_swaps_its_blocks_with_the_same_gradients() -> None:
    """Chroma's transformer has FLUX.1's block lists; sd-scripts swaps them the same way."""
    from diffusers import ChromaTransformer2DModel

    from backend.families.chroma.family import FAMILY as CHROMA
    from tests.networks.test_flux_lora import t5_encoder

    def chroma() -> ChromaTransformer2DModel:
        torch.manual_seed(0)
        return ChromaTransformer2DModel(
            patch_size=1, in_channels=4, num_layers=4, num_single_layers=6, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 4, 8), approximator_num_channels=16,
            approximator_hidden_dim=32, approximator_layers=2,
        )

    def loss_and_grads_of(model, swap: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(1)
        network = lora.create_network(1.0, 4, 2.0, None, [t5_encoder()], model)
        network.apply_to(None, model, False, True)
        with torch.no_grad():
            for param in network.parameters():
                param.normal_(0, 0.02)
        model.requires_grad_(False)
        swapper = None
        if swap:
            groups = CHROMA.swap_groups(model)
            swapper = swapper_for(groups, CHROMA.blocks_to_swap_split(swap, [len(g) for g in groups]),
                                  torch.device("cpu")).install()
        values = inputs()
        del values["guidance"], values["pooled_projections"]
        model.train()
        loss = (model(**values).sample.float() ** 2).mean()
        loss.backward()
        assert swapper is None or swapper.loaded_blocks == []
        return loss.detach(), [p.grad.clone() for p in network.parameters() if p.requires_grad]

    assert CHROMA.blocks_to_swap_limit(CHROMA.swap_group_sizes(chroma().config)) == 4
    expected_loss, expected = loss_and_grads_of(chroma(), 0)
    loss, grads = loss_and_grads_of(chroma(), 4)
    assert torch.equal(loss, expected_loss)
    assert all(torch.equal(a, b) for a, b in zip(grads, expected, strict=True))


def fine_tune_steps(model: torch.nn.Module, make_inputs, family, blocks_to_swap: int, steps: int = 2
                    ) -> tuple[list[torch.Tensor], BlockSwapper | None]:
    """`steps` fused AdamW steps (--fused_backward_pass) of the whole denoiser, with gradient checkpointing."""
    from backend.training.fused_backward import FusedBackwardStep

    model.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    fused = FusedBackwardStep(optimizer, params, max_grad_norm=1.0, world_size=1)
    swapper = swapped(model, blocks_to_swap, family, trained=True) if blocks_to_swap else None
    model.enable_gradient_checkpointing()
    model.train()
    losses = []
    for _ in range(steps):
        loss = (model(**make_inputs()).sample.float() ** 2).mean()
        loss.backward()
        losses.append(loss.detach())
    fused.remove()
    return losses, swapper


@pytest.mark.parametrize("case", sorted(SWAP_CASES))
def test_a_fused_fine_tune_with_swapped_blocks_trains_the_weights_the_plain_one_trains(case: str) -> None:
    """Trained weights in swapped blocks: stepped on the device while their block is loaded (fused), written
    back to their host copies (the masters) when it is dropped, and read from there by the next forward."""
    build, make_inputs, family, blocks_to_swap, expected_swapped, _ = SWAP_CASES[case]
    torch.manual_seed(0)
    plain = build()
    initial = copy.deepcopy(plain.state_dict())
    swapped_model = copy.deepcopy(plain)
    expected_losses, _ = fine_tune_steps(plain, make_inputs, family, 0)
    losses, swapper = fine_tune_steps(swapped_model, make_inputs, family, blocks_to_swap)

    assert sorted(swapper.state) == expected_swapped
    assert swapper.loaded_blocks == [] and all(not block.dirty for block in swapper.state.values())
    assert torch.equal(losses[0], expected_losses[0]), "the first forward is the same to the bit"
    torch.testing.assert_close(losses[1], expected_losses[1], rtol=1e-4, atol=0)
    got, expected = swapped_model.state_dict(), plain.state_dict()
    last_block = family.swap_groups(swapped_model)[-1][-1]
    stepped = [name for name, p in last_block.named_parameters()]
    assert stepped and all(p.numel() > 0 for p in last_block.parameters()), "trained weights read their masters"
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-3, atol=1e-5, msg=key)
    changed = [key for key in expected if not torch.equal(got[key], initial[key])]
    assert len(changed) > len(expected) // 2, "the steps reached the swapped blocks' host copies"


def test_a_resumed_optimizer_state_of_swapped_weights_goes_to_their_device() -> None:
    from backend.training.block_swap import optimizer_state_to

    in_ram, on_device = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2, device="meta"))
    optimizer = torch.optim.AdamW([in_ram, on_device], fused=False, foreach=False)
    optimizer.state[in_ram] = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)}
    optimizer.state[on_device] = {"exp_avg": torch.zeros(2, device="meta")}
    optimizer_state_to(optimizer, torch.device("meta"))
    assert optimizer.state[in_ram]["exp_avg"].device.type == "meta" == optimizer.state[in_ram]["exp_avg_sq"].device.type
    assert optimizer.state[in_ram]["step"].device.type == "cpu", "an unfused AdamW keeps its step count on the CPU"
    optimizer.param_groups[0]["fused"] = True
    optimizer_state_to(optimizer, torch.device("meta"))
    assert optimizer.state[in_ram]["step"].device.type == "meta", "a fused one on the device"
    optimizer_state_to(optimizer, torch.device("cpu"))  # no swap on a CPU run: nothing to move


def test_tensors_that_require_grad_move_only_when_the_swap_trains_them() -> None:
    model = transformer().requires_grad_(False)
    model.single_transformer_blocks[-1].proj_out.requires_grad_(True)  # as a network could put its own inside
    swapper = swapped(model, 2)
    block = swapper.state[9]
    assert block.tensors and not any(t.requires_grad for t in block.tensors)
    assert model.single_transformer_blocks[-1].proj_out.weight.numel() > 0, "left where it was"
    swapper.remove()
    trained = swapped(model, 2, trained=True).state[9]
    assert sum(trained.trained) == 2 and id(model.single_transformer_blocks[-1].proj_out.weight) in trained.trained_weights
