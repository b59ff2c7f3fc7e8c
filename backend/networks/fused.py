"""One LoRA module over several of our Linear layers that stand for ONE layer of the original model.

FLUX.1's original (BFL) model computes q, k and v (and, in single blocks, the MLP input) with one
fused Linear; diffusers' transformer, which we train, has a Linear per part, all fed the same input.
sd-scripts' networks/lora_flux.py trains one LoRA over the fused Linear, so its files hold one
`lora_down` (rank x in) and one `lora_up` (sum of the parts' outputs x rank). `FusedLoRAModule` is
that LoRA laid over our separate layers: the down projection is computed once per input and row
slices of `up` feed each member, so the output, the initialization, the scale, the dropouts
(neuron, rank, module: drawn once per fused module and forward pass) and the state dict are
sd-scripts'.

With `split=True` (sd-scripts' `split_qkv`) each part has its own down/up pair of rank r; the state
dict holds them merged as sd-scripts saves them: down concatenated (n*r x in), up block-diagonal
(sum of outs x n*r). sd-scripts keeps alpha unchanged there, so every reader (which takes
scale = alpha / down rows) applies the parts at 1/n of their trained strength (sd-scripts issue
#2204); we save alpha * n instead, so the file means what was trained in every reader and loads into
a fused network with the same output. Loading divides it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.module import WrappedLayer


class FusedLoRAModule(WrappedLayer):
    def __init__(
        self,
        lora_name: str,
        members: Sequence[nn.Linear],
        multiplier: float = 1.0,
        lora_dim: int = 4,
        alpha: float | torch.Tensor | None = 1.0,
        dropout: float | None = None,
        rank_dropout: float | None = None,
        module_dropout: float | None = None,
        split: bool = False,
    ):
        super().__init__(lora_name, members[0], multiplier, lora_dim, alpha)
        in_features = {m.in_features for m in members}
        if len(in_features) != 1:
            raise ValueError(f"{lora_name}: fused layers must share their input width, got {sorted(in_features)}")
        self._members = list(members)  # a plain list: the base layers' weights stay out of the state dict
        self.out_features = [m.out_features for m in members]
        self.split = split
        device = members[0].weight.device
        (width,) = in_features
        if split:
            for i, out in enumerate(self.out_features):
                down = nn.Parameter(torch.empty(lora_dim, width, device=device))
                nn.init.kaiming_uniform_(down, a=math.sqrt(5))
                self.register_parameter(f"lora_down_{i}", down)
                self.register_parameter(f"lora_up_{i}", nn.Parameter(torch.zeros(out, lora_dim, device=device)))
        else:
            self.lora_down = nn.Linear(width, lora_dim, bias=False, device=device)
            self.lora_up = nn.Linear(lora_dim, sum(self.out_features), bias=False, device=device)
            nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_up.weight)
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout
        self._org_forwards: list[Any] = []
        # The shared down projection of the input being processed: (input, members still to call, result).
        self._pending: tuple[torch.Tensor, int, Any] | None = None

    @property
    def parts(self) -> int:
        return len(self._members)

    def _rows(self, i: int) -> slice:
        start = sum(self.out_features[:i])
        return slice(start, start + self.out_features[i])

    # --- hooks -----------------------------------------------------------------------------------
    def apply_to(self) -> None:
        if self._org_forwards:
            raise RuntimeError(f"LoRA {self.lora_name} is already applied")
        for i, member in enumerate(self._members):
            self._org_forwards.append(member.forward)
            member.forward = partial(self._forward_member, i)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused layer's output (all parts concatenated), as the original model's Linear gives it."""
        return torch.cat([self._forward_member(i, x) for i in range(self.parts)], dim=-1)

    def _forward_member(self, i: int, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        org = self._org_forwards[i] if self._org_forwards else self._members[i].forward
        out = org(x, *args, **kwargs)
        if self.multiplier == 0:
            return out
        shared = self._shared(x)
        if shared is None:  # module dropout: the whole fused module is off this step
            return out
        if self.split:
            lx = self._split_down(i, x)
            scale = self._rank_dropout_scale()
            lx = nn.functional.linear(lx, getattr(self, f"lora_up_{i}"))
        else:
            lx, scale = shared
            lx = nn.functional.linear(lx, self.lora_up.weight[self._rows(i)])
        return out + (lx * (self.multiplier * scale)).to(out.dtype)

    def _shared(self, x: torch.Tensor) -> tuple[torch.Tensor, float] | tuple[()] | None:
        """What the members share for this input, computed at the first member's call: the module dropout
        draw and (fused) the dropped-out down projection. The members all receive the same tensor."""
        pending = self._pending
        if pending is not None and pending[0] is x:
            remaining, result = pending[1] - 1, pending[2]
        else:
            remaining, result = self.parts - 1, self._draw(x)
        self._pending = (x, remaining, result) if remaining > 0 else None
        return result

    def _draw(self, x: torch.Tensor) -> tuple[torch.Tensor, float] | tuple[()] | None:
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return None
        if self.split:
            return ()
        lx = self.lora_down(x.to(self.lora_down.weight.dtype))
        return self._dropouts(lx), self._rank_dropout_scale()

    def _split_down(self, i: int, x: torch.Tensor) -> torch.Tensor:
        down = getattr(self, f"lora_down_{i}")
        return self._dropouts(nn.functional.linear(x.to(down.dtype), down))

    def _dropouts(self, lx: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout:
            lx = nn.functional.dropout(lx, p=self.dropout)
        if self.training and self.rank_dropout:
            mask = torch.rand((lx.size(0), self.lora_dim), device=lx.device) > self.rank_dropout
            if lx.dim() == 3:  # tokens: (batch, tokens, rank)
                mask = mask.unsqueeze(1)
            lx = lx * mask.to(lx.dtype)
        return lx

    def _rank_dropout_scale(self) -> float:
        if self.training and self.rank_dropout:
            return self.scale / (1.0 - self.rank_dropout)  # keep the expected magnitude
        return self.scale

    # --- weights ---------------------------------------------------------------------------------
    def is_up_param(self, name: str) -> bool:
        return name.startswith("lora_up")

    def up_down(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.split:
            return self.lora_up.weight, self.lora_down.weight
        downs = [getattr(self, f"lora_down_{i}") for i in range(self.parts)]
        ups = [getattr(self, f"lora_up_{i}") for i in range(self.parts)]
        return torch.block_diag(*ups), torch.cat(downs, dim=0)

    def rescale_(self, factor: float) -> None:
        for param in self.parameters():
            param.mul_(factor)

    @torch.no_grad()
    def merge_into_org(self, dtype: torch.dtype | None, device: torch.device | str | None) -> None:
        """Add each part's rows of the fused delta to its own layer's weight (for --base_weights)."""
        delta = self.delta_weight()
        for i, member in enumerate(self._members):
            weight = member.weight
            part = delta[self._rows(i)].to(device=device or weight.device)
            merged = weight.to(device=part.device, dtype=torch.float32) + part
            weight.data = merged.to(device=weight.device, dtype=dtype or weight.dtype)

    # A split module's state dict is the merged form sd-scripts saves (see the module doc).
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        if not self.split:
            super()._save_to_state_dict(destination, prefix, keep_vars)
            return
        up, down = self.up_down()
        alpha = self.alpha * self.parts
        destination[prefix + "lora_down.weight"] = down if keep_vars else down.detach()
        destination[prefix + "lora_up.weight"] = up if keep_vars else up.detach()
        destination[prefix + "alpha"] = alpha if keep_vars else alpha.detach()

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        if not self.split:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
            return
        keys = [prefix + k for k in ("lora_down.weight", "lora_up.weight", "alpha")]
        present = [k for k in keys if k in state_dict]
        if len(present) < len(keys):
            if strict:
                missing_keys += [k for k in keys if k not in state_dict]
            if not present:
                return
        with torch.no_grad():
            if keys[2] in state_dict:
                self.alpha.copy_(state_dict[keys[2]] / self.parts)
            down, up = state_dict.get(keys[0]), state_dict.get(keys[1])
            if down is None or up is None:
                return
            own_up, own_down = self.up_down()
            if down.shape != own_down.shape or up.shape != own_up.shape:
                error_msgs.append(f"{prefix}: shapes {tuple(down.shape)}/{tuple(up.shape)} do not fit "
                                  f"{tuple(own_down.shape)}/{tuple(own_up.shape)}")
                return
            r = self.lora_dim
            blocks = [up[self._rows(i), i * r:(i + 1) * r] for i in range(self.parts)]
            if not torch.equal(torch.block_diag(*blocks).to(up.dtype), up):
                raise ValueError(msg(
                    "network.fused.not_split",
                    "{name}: the file's LoRA for this fused layer was not trained with split_qkv (its up weight is "
                    "not block-diagonal); load it without network_args split_qkv=True",
                    name=prefix.rstrip("."),
                ))  # fmt: skip
            for i, block in enumerate(blocks):
                getattr(self, f"lora_down_{i}").copy_(down[i * r:(i + 1) * r])
                getattr(self, f"lora_up_{i}").copy_(block)

