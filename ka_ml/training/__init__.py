"""The training procedure, pure: snapshots in, chosen and evaluated models out.

``folds`` splits labelled snapshots in time (rolling origins), ``churn`` and ``timing``
choose and fit the two models on those origins, ``evaluation`` measures the procedure out of
time beside the baselines, and ``tracking`` writes a run to MLflow (its one edge). The job
that wires them, :mod:`ka_ml.jobs.train`, is the only caller.
"""
