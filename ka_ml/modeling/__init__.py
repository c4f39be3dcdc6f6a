"""Models, baselines and the metrics that judge them."""
