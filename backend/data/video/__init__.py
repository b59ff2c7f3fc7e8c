"""The video data layer (issue 18): finetrainers' dataset flags -> bucketed clips in [-1, 1].

Torch-free (importable from preflight and option checks):

    sources.load_records(data_root, dataset_file, video_column, caption_column, id_token)
        -> list[VideoRecord(path, caption)]        # the three layouts; every problem listed at once
    buckets.parse_buckets(video_resolution_buckets, image_resolution_buckets) -> Buckets
    buckets.check_buckets(buckets, temporal, spatial, model_label)   # frames 1 + k*temporal, sizes
    buckets.default_video_buckets(temporal, spatial)                  # finetrainers' defaults that fit
    buckets.choose_bucket(buckets, frames, height, width, image) -> (F, H, W) | None
    buckets.frame_indices(total, count, "spread" | "first")
    errors.VideoDataError (a DatasetError), VideoDecodeError(path, reason), ClipProblem, format_problems

With torch and PyAV:

    decode.probe(path) -> VideoInfo(frames, width, height, fps)
    decode.read_clip(path, frame_indices) -> uint8 [F, 3, H, W]
    dataset.scan(records, buckets, temporal, spatial) -> (list[ScannedClip], list[ClipProblem])
    dataset.VideoClipSet(scanned, buckets, reshape_mode, frame_selection=..., seed=...)
        [i] -> {"video": float32 [3, F, H, W] in [-1, 1], "caption", "path", "bucket": (F, H, W)}
        .batches(batch_size, seed, epoch) -> list[list[int]]   (same-bucket, deterministic)
    dataset.collate(items) -> {"video": [B, 3, F, H, W], "caption": [...], "path": [...], "bucket"}

A typical run: load_records -> parse_buckets -> check_buckets (family's temporal/spatial steps) ->
scan (preflight: report problems and stop) -> VideoClipSet -> batches per epoch -> VAE.
Each module's docstring says where it follows finetrainers and where it deliberately does not.
"""

from backend.data.video.buckets import Buckets, check_buckets, choose_bucket, frame_indices, parse_buckets
from backend.data.video.errors import ClipProblem, VideoDataError, VideoDecodeError, format_problems
from backend.data.video.sources import VideoRecord, load_records

__all__ = [
    "Buckets",
    "ClipProblem",
    "VideoDataError",
    "VideoDecodeError",
    "VideoRecord",
    "check_buckets",
    "choose_bucket",
    "format_problems",
    "frame_indices",
    "load_records",
    "parse_buckets",
]
