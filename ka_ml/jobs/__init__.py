"""The jobs: what a command does, end to end, and the only code that touches several edges.

``train`` (snapshots -> MLflow models), ``score`` (weekly scores -> outputs, score history,
delivery), ``backtest`` (past scores against what happened) and ``notify`` (digests out).
Each reads the data, calls the pure layers below (training, scoring, reporting, monitoring,
delivery) and owns the side effects: MLflow, the file system, the score history and the
delivery channels together. The CLI calls these jobs only.
"""
