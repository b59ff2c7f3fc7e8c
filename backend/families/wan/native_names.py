"""Wan 2.1's original module names (Wan-AI's code, what ComfyUI loads) from the diffusers paths: the reverse of
diffusers' convert_wan_to_diffusers.py renames (attention projections, FFN, embedders, head; the original
names its norms norm1, norm3, norm2 where diffusers has norm1, norm2, norm3)."""

from __future__ import annotations

# diffusers path piece -> original, tried longest first on the dotted path.
_RENAMES = {
    "attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
    "attn1.to_out.0": "self_attn.o", "attn1.norm_q": "self_attn.norm_q", "attn1.norm_k": "self_attn.norm_k",
    "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k", "attn2.to_v": "cross_attn.v",
    "attn2.to_out.0": "cross_attn.o", "attn2.norm_q": "cross_attn.norm_q", "attn2.norm_k": "cross_attn.norm_k",
    "attn2.add_k_proj": "cross_attn.k_img", "attn2.add_v_proj": "cross_attn.v_img",
    "attn2.norm_added_k": "cross_attn.norm_k_img",
    "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
    "condition_embedder.time_embedder.linear_1": "time_embedding.0",
    "condition_embedder.time_embedder.linear_2": "time_embedding.2",
    "condition_embedder.text_embedder.linear_1": "text_embedding.0",
    "condition_embedder.text_embedder.linear_2": "text_embedding.2",
    "condition_embedder.time_proj": "time_projection.1",
    "proj_out": "head.head", "norm2": "norm3", "norm3": "norm2",
}  # fmt: skip


def native_module_name(path: str) -> str:
    parts = path.split(".")
    out: list[str] = []
    index = 0
    while index < len(parts):
        for length in range(len(parts) - index, 0, -1):
            piece = ".".join(parts[index: index + length])
            if piece in _RENAMES:
                out.append(_RENAMES[piece])
                index += length
                break
        else:
            out.append(parts[index])
            index += 1
    return ".".join(out)
