"""Task models: regression, multi-label and multi-task heads on one pretrained backbone.

    specs.py       the registry of tasks: head activation, loss, metric, exported outputs
    losses.py      masked losses and metrics (a row without a label contributes nothing)
    outputs.py     `Output`: one output as learnt from the data; outputs.json
    table.py       CSV/TSV/DataFrame tables -> `TaskSplits`; bad rows named and skipped
    model.py       the multi-output model on the shared trunk; compile arguments
    bottleneck.py  phase 1 on features computed once (in memory)
    evaluation.py  per-task metrics; multilabel thresholds chosen on validation
    plots.py       regression scatter and residual plots
    run.py         what an `Experiment` does differently for a task run
    export.py      SavedModel export and local prediction of a task run

See docs/tasks.md.
"""
