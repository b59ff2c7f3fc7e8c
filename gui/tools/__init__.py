"""Command-line tools as forms (`ToolSpec` from the tools' flag declarations) and the tabs that list them."""
