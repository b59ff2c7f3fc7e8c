"""Tiny captioning and tagging models for tests and the first-run demo: BLIP, GIT and a WD14 tagger.

Each is architecture-faithful and loads through exactly the code path of the real model:
- BLIP: `BlipForConditionalGeneration` + `BlipProcessor` saved with `save_pretrained` (load with
  `make_captions --model_id DIR`);
- GIT: `GitForCausalLM` + `GitProcessor` (load with `make_captions_by_git --model_id DIR`);
- WD14: `model.onnx` with the v2 taggers' input/output names, NHWC float32 input
  `[batch, S, S, 3]` (S=64 here; the tagger reads S from the model) and sigmoid outputs, plus a
  `selected_tags.csv` in the real layout (load with `tag_images_by_wd14_tagger --model_dir DIR`).

BLIP and GIT use BERT WordPiece tokenizers; ours is built from a small word list plus single
letters and digits (as word starts and `##` continuations), so every lowercase text tokenizes
offline. BLIP's tokenizer adds `[DEC]` (its decoder's start token, the bos token) and `[ENC]`
as the real one does. Weights are random (seeded): the captions are word salad, but real words.

The tiny tagger is not random: its tags depend on the image's mean colour (a red image gets
`red_theme`, and so on), so tests can check which tags are written. `simple_background` and
`^_^` are always on, `monochrome` always off; ratings favour `general`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

_WORDS = """
a an the of and with in on at by for to from under over near photo picture painting drawing
cat dog bird horse person man woman girl boy child people face hair hand sitting standing
walking red green blue yellow black white orange purple pink brown gray sky cloud sun water
tree trees flower grass field street house room table car sign that says is are
"""
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"

# (name, category, weights on the input's B, G, R channel means in 0..1, bias): logit = w . mean + bias
_TAGS: list[tuple[str, int, tuple[float, float, float], float]] = [
    ("general", 9, (0, 0, 0), 2.0),
    ("sensitive", 9, (0, 0, 0), 0.0),
    ("questionable", 9, (0, 0, 0), -1.0),
    ("explicit", 9, (0, 0, 0), -2.0),
    ("red_theme", 0, (0, 0, 8), -4.0),
    ("green_theme", 0, (0, 8, 0), -4.0),
    ("blue_theme", 0, (8, 0, 0), -4.0),
    ("simple_background", 0, (0, 0, 0), 3.0),
    ("^_^", 0, (0, 0, 0), 3.0),
    ("monochrome", 0, (0, 0, 0), -3.0),
    ("tiny_hero_(series)", 4, (0, 0, 8), -4.0),
]
TINY_TAGGER_SIZE = 64


def _bert_tokenizer(**special: str):  # -> BertTokenizer (imported lazily: transformers is heavy)
    from transformers import BertTokenizer

    words = sorted(set(_WORDS.split()) - set(_CHARS))
    tokens = _SPECIALS + list(_CHARS) + ["##" + c for c in _CHARS] + words
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, model_max_length=512,
                         **special)


def make_tiny_blip(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    out = Path(out)
    tokenizer = _bert_tokenizer(bos_token="[DEC]")
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=128,
            bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_tiny_git(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import GitConfig, GitForCausalLM, GitProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    out = Path(out)
    tokenizer = _bert_tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = GitProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = GitConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GitForCausalLM(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_tiny_wd14(out: str | Path, size: int = TINY_TAGGER_SIZE) -> Path:
    """model.onnx (mean colour -> sigmoid tag probabilities) and selected_tags.csv in `out`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = np.array([w for _, _, w, _ in _TAGS], dtype=np.float32).T / 255.0  # [3, tags], input is 0..255
    bias = np.array([b for _, _, _, b in _TAGS], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1:0", "axes"], ["channel_means"], keepdims=0),
            helper.make_node("MatMul", ["channel_means", "weights"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_wd14_tagger",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["batch_size", size, size, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch_size", len(_TAGS)])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="make_tiny_model")
    model.ir_version = 8  # readable by every onnxruntime that supports opset 18
    onnx.checker.check_model(model)
    onnx.save(model, str(out / "model.onnx"))
    with open(out / "selected_tags.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (name, category, _, _) in enumerate(_TAGS):
            writer.writerow([100000 + index, name, category, 1000 - index])
    return out


BUILDERS = {"blip": make_tiny_blip, "git": make_tiny_git, "wd14": make_tiny_wd14}


def make_tiny_captioner(arch: str, out: str | Path, seed: int = 0) -> Path:
    """Build the tiny `arch` model (blip, git or wd14) into the folder `out`; returns the folder."""
    if arch == "wd14":
        return make_tiny_wd14(out)
    return BUILDERS[arch](out, seed=seed)
