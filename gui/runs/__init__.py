"""Running one subprocess at a time (a training run or a tool) and showing it: the runner, its state from
the progress lines, the process tree it stops, the progress and failure texts, the log box."""
