"""The dataset layer: discovery, captions, images, buckets, batches, latent caches, preflight.

Typical use by a trainer:

    specs = specs_from_args(args, default_resolution=1024)      # or the --dataset_config adapter
    # n processes, this one is number r: batches are planned at n x the batch size, r loads its share
    datasets = [TrainDataset(s, seed=args.seed, processes=n) for s in specs]
    group = DatasetGroup(datasets, seed=args.seed, rank=r)
    if args.cache_latents or args.cache_latents_to_disk:
        cache_latents(group, vae_encode, args.vae_batch_size, args.cache_latents_to_disk, arch="sdxl")
    loader = make_dataloader(group, args.max_data_loader_n_workers, args.persistent_data_loader_workers)
    for epoch in range(1, epochs + 1):
        group.set_epoch(epoch)
        for batch in loader: ...
"""

from backend.data.buckets import make_bucket_resolutions, verify_bucket_reso_steps
from backend.data.config import specs_from_args
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.errors import DatasetError
from backend.data.latent_cache import cache_latents, check_cacheable
from backend.data.latent_files import CacheKey, cache_path, is_cache_valid
from backend.data.loader import EpochSampler, make_dataloader
from backend.data.preflight import check_images, preflight_report
from backend.data.specs import DatasetSpec, SubsetSpec, parse_resolution
from backend.data.summary import bucket_info, bucket_table, dataset_dirs, format_bucket_table, tag_frequency

__all__ = [
    "CacheKey",
    "DatasetError",
    "DatasetGroup",
    "DatasetSpec",
    "EpochSampler",
    "SubsetSpec",
    "TrainDataset",
    "bucket_info",
    "bucket_table",
    "cache_latents",
    "cache_path",
    "check_cacheable",
    "check_images",
    "dataset_dirs",
    "format_bucket_table",
    "is_cache_valid",
    "make_bucket_resolutions",
    "make_dataloader",
    "parse_resolution",
    "preflight_report",
    "specs_from_args",
    "tag_frequency",
    "verify_bucket_reso_steps",
]
