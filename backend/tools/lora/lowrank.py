"""Low-rank factorisation of a weight delta by SVD, shared by resize, SVD merge and extract.

Rank choice follows sd-scripts' resize_lora: a fixed rank, or a dynamic method with `rank` as the
maximum (`sv_ratio`: singular values above S[0] / param; `sv_cumulative`: smallest rank whose
cumulative sum of S reaches the fraction param; `sv_fro`: smallest rank whose retained Frobenius
norm reaches the fraction param), always clamped to [1, available rank].

The base-relative methods (`fro_ckpt`, `spn_ckpt`) compare each singular value with a `reference`
norm of the layer the delta modifies (its Frobenius or spectral norm in the base checkpoint, in the
units of the singular values): keep `s_i >= reference * 10**param`, `param` in log10 units. They
may keep nothing (rank 0): a delta that small against its layer is dropped, not kept at rank 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.tools.lora.tool_cli import BASE_METHODS, DYNAMIC_METHODS

MIN_SV = 1e-6


@dataclass
class LowRank:
    up: torch.Tensor  # [out, rank] (conv: [out, rank, 1, 1])
    down: torch.Tensor  # [rank, in] (conv: [rank, in, kh, kw])
    rank: int
    fro_retained: float  # |kept delta|_F / |delta|_F
    discarded: float = 0.0  # |delta - kept delta|_F, in the units of the singular values


def choose_rank(
    singular: torch.Tensor, max_rank: int, method: str | None, param: float | None, reference: float | None = None
) -> int:
    available = int(singular.numel())
    if method in BASE_METHODS:
        if reference is None or param is None:
            raise ValueError(f"{method} needs the base layer's norm (reference) and a log10 threshold (param)")
        kept = int((singular >= reference * 10.0**param).sum())
        return max(0, min(kept, max_rank, available))
    if method is None:
        rank = max_rank
    elif float(singular[0]) <= MIN_SV:
        rank = 1
    elif method == "sv_ratio":
        rank = int((singular > singular[0] / param).sum())
    elif method == "sv_cumulative":
        cumulative = torch.cumsum(singular, 0) / singular.sum()
        rank = int(torch.searchsorted(cumulative, torch.tensor(param, dtype=cumulative.dtype))) + 1
    elif method == "sv_fro":
        energy = torch.cumsum(singular**2, 0) / (singular**2).sum()
        rank = int(torch.searchsorted(energy, torch.tensor(param**2, dtype=energy.dtype))) + 1
    else:
        raise ValueError(
            f"unknown dynamic method {method!r}; expected one of {', '.join(DYNAMIC_METHODS + BASE_METHODS)}"
        )
    return max(1, min(rank, max_rank, available))


def factorize(
    delta: torch.Tensor,
    max_rank: int,
    method: str | None = None,
    param: float | None = None,
    clamp_quantile: float | None = None,
    reference: float | None = None,
) -> LowRank:
    """`up @ down ~= delta` with the chosen rank; singular values go into `up` (as in sd-scripts).

    `delta` is `[out, in]` or a conv weight `[out, in, kh, kw]` (flattened for the SVD).
    `clamp_quantile` clamps both factors to that quantile of their absolute values (extract's option).
    """
    u, s, vh = torch.linalg.svd(delta.float().flatten(1), full_matrices=False)
    return _truncate(u, s, vh, tuple(delta.shape), max_rank, method, param, clamp_quantile, reference)


def factorize_product(
    up: torch.Tensor,
    down: torch.Tensor,
    max_rank: int,
    method: str | None = None,
    param: float | None = None,
    reference: float | None = None,
) -> LowRank:
    """:func:`factorize` of `up @ down` (a LoRA's delta) without forming it: QR of both factors and
    an SVD of the small r x r core give the same singular vectors at a fraction of the cost."""
    up2, down2 = up.float().flatten(1), down.float().flatten(1)
    q_up, r_up = torch.linalg.qr(up2)
    q_down, r_down = torch.linalg.qr(down2.T)
    u_core, s, vh_core = torch.linalg.svd(r_up @ r_down.T)
    shape = (up.shape[0], *down.shape[1:])
    return _truncate(q_up @ u_core, s, vh_core @ q_down.T, shape, max_rank, method, param, None, reference)


def _truncate(
    u: torch.Tensor,
    s: torch.Tensor,
    vh: torch.Tensor,
    shape: tuple[int, ...],
    max_rank: int,
    method: str | None,
    param: float | None,
    clamp_quantile: float | None,
    reference: float | None = None,
) -> LowRank:
    rank = choose_rank(s, max_rank, method, param, reference)
    total = float(torch.linalg.vector_norm(s))
    kept = float(torch.linalg.vector_norm(s[:rank]))
    discarded = float(torch.linalg.vector_norm(s[rank:]))
    up, down = u[:, :rank] * s[:rank], vh[:rank]
    if clamp_quantile is not None and clamp_quantile < 1.0 and rank > 0:
        values = torch.cat([up.flatten(), down.flatten()]).abs()
        limit = _quantile(values, clamp_quantile)
        up, down = up.clamp(-limit, limit), down.clamp(-limit, limit)
    if len(shape) == 4:
        up = up.reshape(*up.shape, 1, 1)
        down = down.reshape(rank, *shape[1:])
    return LowRank(up.contiguous(), down.contiguous(), rank, kept / total if total > 0 else 1.0, discarded)


def _quantile(values: torch.Tensor, q: float) -> float:
    # torch.quantile refuses inputs over 2**24 elements; kthvalue has no such limit.
    k = max(1, min(values.numel(), int(round(q * (values.numel() - 1))) + 1))
    return float(values.kthvalue(k).values)
