"""What the notebooks compute and draw, and their edge to data, config and MLflow.

``tables`` holds the exploratory and model-review tables (small pure functions, one tested
definition per number the notebooks show), ``plots`` the figures drawn from them, and
``notebook`` the inputs (environment variables with the CLI's defaults), data loading, the
champion's MLflow run and figure saving. Used by ``notebooks/`` only.
"""
