"""The image generator's flags (`python -m backend.tools.generate`), declared once: its parser and the GUI's
Generate page read them. The model-part flags (FLUX.1's --clip_l/--t5xxl/--ae, SD 3.5's --clip_g, --vae) are
the trainer's own options, their help taken from the option schema, so a model that trains also generates."""

from __future__ import annotations

from backend.families import model_file_options
from backend.options.schema import all_options
from backend.tools.flags.spec import FINITE, Flag, Range, ToolFlags
from backend.training.sample_prompts import SAMPLER_NAMES

SAMPLER_CHOICES = SAMPLER_NAMES  # the trainer's sample samplers
AXES = ("network", "weight", "seed", "cfg", "sampler", "steps", "prompt")


def _model_file_flags() -> tuple[Flag, ...]:
    options = all_options()
    return tuple(Flag(name, "file", help=options[name].help, gui=False) for name in model_file_options())


GENERATE = ToolFlags(
    "generate",
    "Generate images from a base model with LoRA/LyCORIS networks and embeddings, optionally as an X/Y grid",
    (
        Flag("pretrained_model_name_or_path", "text", required=True, metavar="MODEL",
             help="the base model: a diffusers folder or a single file (.safetensors, .ckpt), any family the trainer "
                  "trains"),
        *_model_file_flags(),
        Flag("v_parameterization", "bool", help="a v-prediction model (SD 2.x 768-v) given as a single file"),
        Flag("network", "rows", row=("FILE[:WEIGHT]",),
             help="a LoRA, LoCon, LoHa, LoKr or DyLoRA file applied at WEIGHT (default 1.0); repeatable"),
        Flag("embedding", "rows", row=("FILE",),
             help="a Textual Inversion embedding (SD 1.x/2.x, SDXL); its file name is the word that uses it; "
                  "repeatable"),
        Flag("prompt", "rows", row=("TEXT",),
             help="a prompt in sd-scripts' syntax (text --n negative --w W --h H --d seed --l cfg --s steps "
                  "--ss sampler); repeatable"),
        Flag("from_file", "file", help="a prompt file as the trainer's --sample_prompts reads (.txt one prompt a "
                                       "line, .toml, .json)"),
        Flag("images_per_prompt", "int", default=1, range=Range(1), help="images per prompt (seeds counted up)"),
        Flag("outdir", "save", required=True, help="the folder the images are written to"),
        Flag("seed", "int", help="the first seed (a prompt's --d wins); random when not given"),
        Flag("sampler", "choice", default="euler_a", choices=SAMPLER_CHOICES,
             help="the sampler where a prompt has no --ss"),
        Flag("steps", "int", default=30, range=Range(1, 1000), help="sampling steps where a prompt has no --s"),
        Flag("cfg", "float", default=7.5, range=FINITE, help="CFG scale where a prompt has no --l"),
        Flag("width", "int", default=512, range=Range(64, 8192), help="image width where a prompt has no --w"),
        Flag("height", "int", default=512, range=Range(64, 8192), help="image height where a prompt has no --h"),
        Flag("negative_prompt", "text", default="", help="the negative prompt where a prompt has no --n"),
        Flag("clip_skip", "int", range=Range(1), help="use the output of the Nth last text encoder layer"),
        Flag("xy", "list", metavar="AXIS=VALUES",
             help="an X/Y grid: two axes, X first, each AXIS=VALUES with AXIS one of " + ", ".join(AXES)
                  + ". network: a folder (its network files, sorted by step), a glob or comma-separated files; "
                  "weight, seed, cfg, steps, sampler: comma-separated values; prompt: prompts separated by |"),
        Flag("precision", "choice", default="fp16", choices=("float", "fp16", "bf16"),
             help="the model's precision on a GPU (a CPU computes in float32 unless bf16)"),
        Flag("device", "text", default="cuda", suggestions=("cuda", "cpu"), help="the torch device"),
    ),
)
TOOLS = (GENERATE,)
