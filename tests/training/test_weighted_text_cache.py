"""--weighted_captions with cached text-encoder outputs (sd-scripts' sdxl_train_network caches them weighted):
the cache holds the weighted conditioning, and its files are not those of unweighted captions."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from accelerate import Accelerator

from backend.data.config import specs_from_args
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.text_encoder_files import load_if_valid
from backend.families.loaded import get_spec
from backend.models.loading import load_components
from backend.training.progress import ProgressReporter
from backend.training.text_cache import TextCacheConfig, prepare_text_cache
from tests.end_to_end.helpers import make_images
from tests.tiny_models import TinyModels


def test_the_cache_holds_weighted_outputs_in_files_of_their_own(tiny: TinyModels, tmp_path: Path) -> None:
    make_images(tmp_path / "1_x", 1, caption="(sks:2.0) [dog]")
    [spec] = specs_from_args({"train_data_dir": str(tmp_path), "resolution": "64", "caption_extension": ".txt"})
    group = DatasetGroup([TrainDataset(spec)])
    model = tiny.get("sdxl").path
    components = load_components(model)
    sdxl = get_spec("sdxl")
    args = argparse.Namespace(cache_text_encoder_outputs=False, cache_text_encoder_outputs_to_disk=True,
                              max_token_length=None, clip_skip=None, pretrained_model_name_or_path=str(model),
                              weighted_captions=True)
    config = TextCacheConfig.from_args(args)
    cache = prepare_text_cache(config, Accelerator(cpu=True), sdxl, components, group, torch.float32,
                               ProgressReporter(enabled=False))
    assert cache is not None
    caption = "(sks:2.0) [dog], picture 0"
    with torch.no_grad():
        weighted = sdxl.encode_captions(components, [caption], None, None, weighted=True)
        plain = sdxl.encode_captions(components, ["sks dog, picture 0"], None, None)
    cached = cache.lookup([caption], torch.device("cpu"))
    assert torch.allclose(cached.hidden_states, weighted.hidden_states, atol=1e-6)
    assert not torch.allclose(cached.hidden_states, plain.hidden_states, atol=1e-3)
    assert torch.allclose(cached.pooled, plain.pooled, atol=1e-6)  # the pooled output is not weighted
    # The file records the weighting: an unweighted run does not take it for its own.
    [path] = (tmp_path / "1_x").glob("*_te_outputs.npz")
    file_format = sdxl.text_cache_file(components)
    assert load_if_valid(path, _key(config, model), file_format.arrays) is not None
    unweighted = TextCacheConfig.from_args(argparse.Namespace(**{**vars(args), "weighted_captions": False}))
    assert load_if_valid(path, _key(unweighted, model), file_format.arrays) is None


def _key(config: TextCacheConfig, model: Path):
    from backend.data.text_encoder_files import TextCacheKey
    from backend.models.files import model_identity

    return TextCacheKey(caption="(sks:2.0) [dog], picture 0", encoder_id=model_identity(str(model)),
                        max_token_length=75, dtype="float32",
                        encoding=";weighted_captions" if config.weighted_captions else "")
