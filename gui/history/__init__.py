"""The History page: the runs the GUI recorded (gui/runs/run_history.py), searched, re-opened, run again, compared."""
