"""finetrainers' dataset layouts, each read into `list[VideoRecord(path, caption)]`. Torch-free.

Three layouts, chosen by `load_records` from finetrainers' flags:

(a) `--data_root` with two line lists: a captions file and a videos file (one entry per line, video
    paths relative to data_root). `--caption_column` / `--video_column` name the two files, as in
    finetrainers 0.0.x; when they do not (not given, or finetrainers' table defaults "text" / "video"
    that name no file there) the files are found under finetrainers' names: prompts.txt, prompt.txt,
    captions.txt, caption.txt and videos.txt, video.txt.
(b) `--dataset_file` table: CSV (with a header), JSON (a list of objects, or {"data": [...]} as
    finetrainers' validation files have it), JSONL. `--video_column` (default "video") and
    `--caption_column` (default "text") name the columns; video paths are relative to `--data_root`,
    or to the table's folder when no data_root is given. Parquet is refused: reading it needs pyarrow,
    which this install does not have.
(c) a folder of videos/images with same-name `.txt` captions (`clip.mp4` + `clip.txt`), not recursive,
    used when data_root has neither line list.

`--id_token` is put before every caption with one space, as finetrainers does.

Where finetrainers is silently wrong we stop with a message instead: it drops blank lines from the
two lists independently (so one blank line shifts every caption after it onto the wrong video), it
stops at the first missing file without naming it, and its pair layout skips videos that have no
caption. Here every problem of a dataset is collected (missing files with a count, blank or empty
captions with their line, line-count mismatches, missing columns naming the ones found, unknown
extensions) and reported at once, before anything is decoded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from backend.data.video.errors import VideoDataError, collected
from backend.messages import msg

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
CAPTION_LIST_NAMES = ("prompts.txt", "prompt.txt", "captions.txt", "caption.txt")
VIDEO_LIST_NAMES = ("videos.txt", "video.txt")
DEFAULT_VIDEO_COLUMN = "video"  # finetrainers 0.0.x's --video_column default
DEFAULT_CAPTION_COLUMN = "text"  # finetrainers 0.0.x's --caption_column default
TABLE_SUFFIXES = (".csv", ".json", ".jsonl")


@dataclass(frozen=True)
class VideoRecord:
    """One training item before decoding: the media file and its caption (id token included)."""

    path: str
    caption: str

    @property
    def is_image(self) -> bool:
        return is_image_path(self.path)


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_records(
    data_root: str | Path | None,
    dataset_file: str | Path | None = None,
    video_column: str | None = None,
    caption_column: str | None = None,
    id_token: str | None = None,
) -> list[VideoRecord]:
    """The records finetrainers' dataset flags describe; `VideoDataError` lists every problem found."""
    if dataset_file:
        records = records_from_table(
            dataset_file, data_root, video_column or DEFAULT_VIDEO_COLUMN, caption_column or DEFAULT_CAPTION_COLUMN
        )
    else:
        if not data_root:
            raise VideoDataError(msg(
                "video.source.no_data",
                "no training data given: pass --data_root (a folder with prompts.txt and videos.txt, or videos with "
                "same-name .txt captions) or --dataset_file (a CSV, JSON or JSONL table)",
            ))  # fmt: skip
        root = _existing_folder(data_root)
        caption_list = _list_file(root, caption_column, DEFAULT_CAPTION_COLUMN, CAPTION_LIST_NAMES, "caption_column")
        video_list = _list_file(root, video_column, DEFAULT_VIDEO_COLUMN, VIDEO_LIST_NAMES, "video_column")
        if caption_list and video_list:
            records = records_from_lists(root, caption_list, video_list)
        elif caption_list or video_list:
            found, missing = (caption_list, VIDEO_LIST_NAMES) if caption_list else (video_list, CAPTION_LIST_NAMES)
            flag = "--video_column" if caption_list else "--caption_column"
            raise VideoDataError(msg(
                "video.source.half_list",
                "{root}: found {found} but not its partner list ({missing}): add that file, or name it with {flag}",
                root=root, found=found.name, missing=", ".join(missing), flag=flag,
            ))  # fmt: skip
        else:
            records = records_from_pairs(root)
    return with_id_token(records, id_token)


def with_id_token(records: Iterable[VideoRecord], id_token: str | None) -> list[VideoRecord]:
    """finetrainers' --id_token: `"<token> " + caption` (the token stripped first)."""
    prefix = f"{id_token.strip()} " if id_token and id_token.strip() else ""
    return [VideoRecord(r.path, prefix + r.caption) for r in records]


# --- (a) two line lists ---------------------------------------------------------------------------


def records_from_lists(root: str | Path, caption_file: str | Path, video_file: str | Path) -> list[VideoRecord]:
    """One caption per line of `caption_file` for the video on the same line of `video_file`."""
    root = Path(root)
    caption_path, video_path = root / caption_file, root / video_file
    problems: list[str] = []
    captions = _read_lines(caption_path, problems)
    videos = _read_lines(video_path, problems)
    if len(captions) != len(videos):
        problems.append(msg(
            "video.source.count_mismatch",
            "{captions} has {caption_count} caption line(s) but {videos} has {video_count} video line(s): "
            "each line of one must match the same line of the other",
            captions=caption_path.name, caption_count=len(captions), videos=video_path.name, video_count=len(videos),
        ))  # fmt: skip
    for number, caption in enumerate(captions, 1):
        if not caption:
            problems.append(_empty_line(caption_path, number))
    paths = [root / line for line in videos]
    for number, line in enumerate(videos, 1):
        if not line:
            problems.append(_empty_line(video_path, number))
    _check_media([root / line for line in videos if line], problems, video_path.name)
    _raise_if(problems, root)
    return [VideoRecord(str(p), c) for p, c in zip(paths, captions, strict=True)]


def _read_lines(path: Path, problems: list[str]) -> list[str]:
    """Stripped lines without the blank ones at the end (an editor's last newline is not an entry)."""
    text = _read_text(path, problems)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _empty_line(path: Path, number: int) -> str:
    return msg(
        "video.source.empty_line",
        "{file} line {line} is empty: every line pairs with the same line of the other list; write the caption or "
        "path there, or delete the line in both files",
        file=path.name, line=number,
    )  # fmt: skip


def _list_file(root: Path, column: str | None, table_default: str, known: tuple[str, ...], flag: str) -> Path | None:
    if column and (root / column).is_file():
        return root / column
    if column and column != table_default:
        texts = sorted(p.name for p in root.glob("*.txt"))[:10]
        raise VideoDataError(msg(
            "video.source.list_missing",
            "--{flag} {name}: no such file in {root} (without --dataset_file it names the line list there; .txt files "
            "found: {found})",
            flag=flag, name=column, root=root, found=", ".join(texts) or "-",
        ))  # fmt: skip
    found = [name for name in known if (root / name).is_file()]
    if len(found) > 1:  # finetrainers refuses this too: which list is meant is a guess
        raise VideoDataError(msg(
            "video.source.ambiguous_list", "{root}: found {found}: keep one, or name it with --{flag}",
            root=root, found=" and ".join(found), flag=flag,
        ))  # fmt: skip
    return root / found[0] if found else None


# --- (b) a table: CSV, JSON, JSONL ----------------------------------------------------------------


def records_from_table(
    dataset_file: str | Path, data_root: str | Path | None, video_column: str, caption_column: str
) -> list[VideoRecord]:
    """The table's rows: video paths relative to `data_root` (or the table's folder)."""
    table = Path(dataset_file)
    suffix = table.suffix.lower()
    if suffix == ".parquet":
        raise VideoDataError(msg(
            "video.source.parquet",
            "--dataset_file {path}: Parquet tables need pyarrow, which this install does not include: save the table "
            "as CSV, JSON (a list of objects) or JSONL and pass that file",
            path=table,
        ))  # fmt: skip
    if suffix not in TABLE_SUFFIXES:
        raise VideoDataError(msg(
            "video.source.table_format",
            "--dataset_file {path}: unknown table format {suffix}: use a .csv (with a header row), .json (a list of "
            "objects) or .jsonl (one object per line)",
            path=table, suffix=suffix or "(none)",
        ))  # fmt: skip
    if not table.is_file():
        raise VideoDataError(msg("video.source.table_missing", "--dataset_file {path}: file not found", path=table))
    root = _existing_folder(data_root) if data_root else table.parent
    problems: list[str] = []
    rows = {".csv": _csv_rows, ".json": _json_rows, ".jsonl": _jsonl_rows}[suffix](table, problems)
    _raise_if(problems, table)
    columns: set[str] = set().union(*(row.keys() for _, row in rows)) if rows else set()
    missing = [c for c in (video_column, caption_column) if c not in columns]
    if missing:
        flags = {video_column: "--video_column", caption_column: "--caption_column"}
        raise VideoDataError(msg(
            "video.source.column_missing",
            "--dataset_file {path}: no column {names}; the columns are: {found}. Name the right ones with "
            "{flags}",
            path=table, names=", ".join(repr(c) for c in missing), found=", ".join(sorted(columns)) or "(none)",
            flags=" / ".join(flags[c] for c in missing),
        ))  # fmt: skip
    records, paths = [], []
    for where, row in rows:
        video, caption = _cell(row.get(video_column)), _cell(row.get(caption_column))
        for value, column in ((video, video_column), (caption, caption_column)):
            if not value:
                problems.append(msg(
                    "video.source.empty_cell", "{where}: {column} is empty or missing", where=where, column=column
                ))  # fmt: skip
        if not video:
            continue
        paths.append(root / video)
        records.append(VideoRecord(str(root / video), caption))
    if not rows:
        problems.append(msg("video.source.table_empty", "the table has no rows"))
    _check_media(paths, problems, table.name)
    _raise_if(problems, table)
    return records


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip()


def _csv_rows(table: Path, problems: list[str]) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(_read_text(table, problems), newline=""))
    rows = []
    for row in reader:  # line_num: the file line the row ends on (quoted captions may span lines)
        if any(row.values()):
            rows.append((f"{table.name} line {reader.line_num}", row))
    return rows


def _json_rows(table: Path, problems: list[str]) -> list[tuple[str, dict]]:
    text = _read_text(table, problems)
    try:
        data = json.loads(text) if text else []
    except json.JSONDecodeError as exc:
        problems.append(msg(
            "video.source.bad_json", "{file} line {line}: not valid JSON ({reason})",
            file=table.name, line=exc.lineno, reason=exc.msg,
        ))  # fmt: skip
        return []
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        problems.append(msg(
            "video.source.json_shape",
            "{file}: expected a list of objects (or {\"data\": [...]}), one per video, found {found}",
            file=table.name, found=type(data).__name__,
        ))  # fmt: skip
        return []
    return _objects(table, [(f"{table.name} entry {n}", item) for n, item in enumerate(data, 1)], problems)


def _jsonl_rows(table: Path, problems: list[str]) -> list[tuple[str, dict]]:
    items = []
    for number, line in enumerate(_read_text(table, problems).splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((f"{table.name} line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(msg(
                "video.source.bad_json", "{file} line {line}: not valid JSON ({reason})",
                file=table.name, line=number, reason=exc.msg,
            ))  # fmt: skip
    return _objects(table, items, problems)


def _objects(table: Path, items: list[tuple[str, object]], problems: list[str]) -> list[tuple[str, dict]]:
    rows = []
    for where, item in items:
        if isinstance(item, dict):
            rows.append((where, item))
        else:
            problems.append(msg(
                "video.source.not_object", "{where}: expected an object with the video and caption, found {found}",
                where=where, found=type(item).__name__,
            ))  # fmt: skip
    return rows


# --- (c) videos/images with same-name .txt captions ----------------------------------------------


def records_from_pairs(folder: str | Path) -> list[VideoRecord]:
    """Each video/image in `folder` (not its subfolders) with the caption in its same-name `.txt`."""
    root = _existing_folder(folder)
    files = sorted(p for p in root.iterdir() if p.is_file())
    captions = {p.stem: p for p in files if p.suffix.lower() == ".txt"}
    media = [p for p in files if p.suffix.lower() in MEDIA_EXTENSIONS]
    problems: list[str] = []
    by_stem: dict[str, list[Path]] = {}
    for path in media:
        by_stem.setdefault(path.stem, []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.append(msg(
                "video.source.shared_caption",
                "{files} share the caption {caption}: rename all but one so each file has its own caption",
                files=", ".join(p.name for p in paths), caption=f"{stem}.txt",
            ))  # fmt: skip
    for path in files:
        if path.suffix.lower() not in MEDIA_EXTENSIONS and path.suffix.lower() != ".txt" and path.stem in captions:
            problems.append(_unknown_extension(path))
    if not media:
        raise VideoDataError(msg(
            "video.source.no_media",
            "{root}: no videos or images found ({extensions}), and no caption/video lists (prompts.txt + videos.txt). "
            "Put the clips with same-name .txt captions there, or pass --dataset_file",
            root=root, extensions=" ".join(MEDIA_EXTENSIONS),
        ))  # fmt: skip
    records, uncaptioned = [], []
    for path in media:
        caption_path = captions.get(path.stem)
        if caption_path is None:
            uncaptioned.append(path.name)
            continue
        caption = _read_text(caption_path, problems).strip()
        if not caption:
            problems.append(msg(
                "video.source.empty_caption", "{file} is empty: write the caption for {media} into it",
                file=caption_path.name, media=path.name,
            ))  # fmt: skip
        records.append(VideoRecord(str(path), caption))
    if uncaptioned:
        problems.append(collected(msg(
            "video.source.uncaptioned",
            "{count} file(s) have no same-name .txt caption (clip.mp4 needs clip.txt): write one for each, or move "
            "the file out of the folder:",
            count=len(uncaptioned),
        ), uncaptioned))  # fmt: skip
    _raise_if(problems, root)
    return records


# --- shared checks --------------------------------------------------------------------------------


def _existing_folder(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise VideoDataError(msg(
            "video.source.root_missing", "--data_root {path}: not a folder (missing, or a file): pass the dataset folder",
            path=root,
        ))  # fmt: skip
    return root


def _read_text(path: Path, problems: list[str]) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        problems.append(msg(
            "video.source.not_utf8", "{file}: not UTF-8 text: save it again as UTF-8", file=path
        ))  # fmt: skip
    except OSError as exc:
        problems.append(msg(
            "video.source.unreadable", "{file}: cannot be read ({reason})", file=path, reason=exc.strerror or exc
        ))  # fmt: skip
    return ""


def _unknown_extension(path: Path) -> str:
    return msg(
        "video.source.unknown_extension",
        "{file}: unknown extension {suffix}: videos can be {videos}, images {images}; convert it (e.g. ffmpeg -i in "
        "out.mp4)",
        file=path.name, suffix=path.suffix or "(none)", videos=" ".join(VIDEO_EXTENSIONS),
        images=" ".join(IMAGE_EXTENSIONS),
    )  # fmt: skip


def _check_media(paths: list[Path], problems: list[str], listed_in: str) -> None:
    """Unknown extensions and missing files (all of them, with a count) among listed paths."""
    missing = []
    for path in paths:
        if path.suffix.lower() not in MEDIA_EXTENSIONS:
            problems.append(_unknown_extension(path))
        elif not path.is_file():
            missing.append(str(path))
    if missing:
        problems.append(collected(msg(
            "video.source.missing_files",
            "{count} of {total} file(s) listed in {listed_in} do not exist (paths are relative to --data_root):",
            count=len(missing), total=len(paths), listed_in=listed_in,
        ), missing))  # fmt: skip


def _raise_if(problems: list[str], where: Path) -> None:
    if problems:
        header = msg(
            "video.source.problems", "the dataset in {where} has {count} problem(s):", where=where, count=len(problems)
        )
        raise VideoDataError(collected(header, problems))
