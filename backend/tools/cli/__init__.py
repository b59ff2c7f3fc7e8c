"""What every tool's command line shares, torch-free: the error types and runner (`light_cli`) and
the argument checks made before anything heavy is imported (`arg_checks`)."""
