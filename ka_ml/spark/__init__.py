"""The Spark engine: the same features and scores as the local engine, on a cluster.

pyspark is imported only inside the functions that run on Spark, so these modules import
(and the jobs use them) without pyspark or Java; ``--engine spark`` is what needs them.

How it maps the local engine onto Spark (see ``ka_ml/features/build.py``):

- every table is read by Spark (:mod:`ka_ml.spark.data`) and packed into one long frame
  (a ``_t`` table code and a few shared typed slots) hashed into account buckets;
- ``groupBy(bucket).applyInPandas`` runs the local per-account kernel on each bucket, many
  accounts per call (:mod:`ka_ml.spark.kernel`, pure pandas, also testable without Spark);
- the portfolio step (revenue share, ABC tier, dependency index) runs once on the driver
  over one revenue figure per account, with the local engine's own functions;
- scoring and explanations run per bucket again, with the champion models broadcast once
  (:mod:`ka_ml.spark.score`); lights and the portfolio columns follow on the driver over
  one row per account, as in :func:`ka_ml.scoring.score.score_accounts`.

Public API: :func:`ka_ml.spark.session.spark_session`,
:func:`ka_ml.spark.data.read_history`, :func:`ka_ml.spark.data.from_history`,
:func:`ka_ml.spark.features.build_features`, :func:`ka_ml.spark.features.feature_frame`,
:func:`ka_ml.spark.features.build_training_set`, :func:`ka_ml.spark.score.score_accounts`.
"""
