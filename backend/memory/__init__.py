"""The memory planner: a run's peak GPU and host memory predicted from the model file's header and the run's
options, without torch (the GUI imports it), and the changes that make a run fit a card (`fit.fit_to_card`).

`weights` reads parameter counts per component and dtype from the file headers, `activations` holds the
measured activation table, `optimizers` the optimizer state sizes, `estimate` puts them together into a
breakdown, `fit` chooses memory savers. docs/performance.md ("Memory planner") has the accuracy figures.
"""
