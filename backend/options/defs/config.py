"""Files that carry options: the training config TOML and the dataset config."""

from backend.options.schema import ALL_COMMANDS, KNOWN_COMMANDS, VIDEO_COMMANDS, Option, declare_all

declare_all(
    [
        Option(
            name="config_file",
            commands=KNOWN_COMMANDS,
            kind="path",
            default=None,
            cli_only=True,
            group="advanced",
            help=(
                "TOML file with training options, keyed by option name; table names such as [model] or "
                "[basic] are ignored. Options on the command line override the file. The .toml suffix may be "
                "left out. Unknown keys are errors. With --output_config, the file to write. Default: none."
            ),
        ),
        Option(
            name="output_config",
            commands=KNOWN_COMMANDS,
            kind="bool",
            default=False,
            cli_only=True,
            group="advanced",
            help=(
                "Write the options that differ from their defaults to the --config_file path as TOML and "
                "exit without training. An existing file is not overwritten; secrets such as API keys are "
                "left out. Default: off."
            ),
        ),
        Option(
            name="dataset_config",
            kind="path",
            default=None,
            group="dataset",
            # train_video takes finetrainers' flag of the same name: its JSON, read by the video data layer.
            commands=ALL_COMMANDS + VIDEO_COMMANDS,  # not LECO's: it trains from a prompt file
            help=(
                "TOML or JSON file that describes datasets and their subsets ([general], [[datasets]], "
                "[[datasets.subsets]]) as in sd-scripts; misplaced or misspelled keys are errors. When set, "
                "train_data_dir, reg_data_dir and in_json are ignored. Default: none (use train_data_dir). "
                "train_video: finetrainers' dataset JSON ({\"datasets\": [...]} with data_root or "
                "dataset_file, dataset_type, resolution buckets), required there."
            ),
        ),
    ]
)
