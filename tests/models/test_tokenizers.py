"""Tiny tokenizer, sd-scripts' long-prompt chunking and the tokenizer cache / offline error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from backend.families.clip import CLIP_G
from backend.models.tokenizers import cache_folder, load_family_tokenizers, tokenize_chunks
from tests.tiny_models import TinyModels

REPO = Path(__file__).resolve().parents[2]
LONG = ", ".join(f"a red cat sitting on a wooden table number {i}" for i in range(40))


def test_tiny_tokenizer_files_and_specials(tiny: TinyModels) -> None:
    folder = tiny.get("sdxl").path
    for name in ("tokenizer", "tokenizer_2"):
        assert (folder / name / "vocab.json").is_file() and (folder / name / "merges.txt").is_file()
    tok1 = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    tok2 = CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2"))
    assert (tok1.pad_token, tok2.pad_token) == ("<|endoftext|>", "!")
    assert tok1.model_max_length == 77
    assert tok1.eos_token_id == len(tok1) - 1 and tok1.bos_token_id == len(tok1) - 2
    ids = tok1("Ünïcode émoji 🐱 and a photograph of a cat").input_ids
    assert ids[0] == tok1.bos_token_id and ids[-1] == tok1.eos_token_id and len(ids) > 10


@pytest.mark.parametrize("arch", ["sd15", "sd2"])
@pytest.mark.parametrize("max_len, chunks", [(None, 1), (75, 1), (150, 2), (225, 3)])
def test_chunking(arch: str, max_len: int | None, chunks: int, tiny: TinyModels) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny.get(arch).path / "tokenizer"))
    ids = tokenize_chunks(tokenizer, [LONG, "a cat"], max_len)
    assert ids.shape == (2, chunks, 77)
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    assert (ids[:, :, 0] == bos).all()
    assert ((ids[:, :, -1] == eos) | (ids[:, :, -1] == pad)).all()
    assert (ids[0, :, -1] == eos).all()  # the long prompt fills every window, each closed by EOS
    # Windows of the short prompt beyond the first hold no text: BOS, EOS, padding.
    assert (ids[1, 1:, 1] == eos).all()
    flat = tokenizer(LONG, truncation=True, max_length=(max_len or 75) + 2).input_ids
    assert ids[0, :, 1:-1].reshape(-1).tolist() == flat[1:-1]


def test_invalid_max_token_length(tiny: TinyModels) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny.get("sd15").path / "tokenizer"))
    with pytest.raises(ValueError, match="75, 150, 225"):
        tokenize_chunks(tokenizer, ["x"], 100)


def test_cache_layout_matches_sd_scripts(tiny: TinyModels) -> None:
    cache = tiny.get("sdxl", single_file=True).tokenizer_cache_dir
    assert cache_folder(cache, CLIP_G.hub_id) == cache / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
    tok1, tok2 = load_family_tokenizers("sdxl", cache)
    assert tok2.pad_token == "!" and tok2.pad_token_id == 0
    assert tok1.pad_token_id == tok1.eos_token_id


def test_offline_uncached_tokenizer_error(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    code = (
        "from backend.models.tokenizers import load_family_tokenizers, TokenizerUnavailableError\n"
        f"try:\n    load_family_tokenizers('sd2', {str(tmp_path / 'cache')!r})\n"
        "except TokenizerUnavailableError as e:\n    print(e)\nelse:\n    print('LOADED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    message = out.stdout
    assert "stabilityai/stable-diffusion-2" in message and "subfolder 'tokenizer'" in message
    assert "--tokenizer_cache_dir" in message
    assert str(tmp_path / "cache" / "stabilityai_stable-diffusion-2") in message
    assert not (tmp_path / "cache").exists()  # nothing half-made is cached


def test_an_unreachable_hub_is_said_at_once(tmp_path: Path) -> None:
    """No network (here: a closed port as the Hub's address): the error comes from one connection attempt,
    not after huggingface_hub's minute of logged retries."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    proxies = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {key: value for key, value in os.environ.items() if key not in proxies}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO))
    code = (
        "from backend.models.tokenizers import load_family_tokenizers, TokenizerUnavailableError\n"
        "try:\n    load_family_tokenizers('sd1', None)\n"
        "except TokenizerUnavailableError as e:\n    print(e)\nelse:\n    print('LOADED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "no connection to 127.0.0.1" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "openai/clip-vit-large-patch14" in out.stdout
    assert "Retrying" not in out.stderr
