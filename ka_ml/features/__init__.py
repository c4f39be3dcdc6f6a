"""Point-in-time features, the feature catalog, labels and training snapshots."""

from ka_ml.features.build import (
    account_features,
    add_portfolio_features,
    build_features,
    feature_frames,
)
from ka_ml.features.catalog import FEATURES, FeatureSpec, catalog_table_markdown, features_for, get
from ka_ml.features.encode import feature_categories
from ka_ml.features.labels import churn_labels, timing_labels
from ka_ml.features.snapshots import build_training_set, snapshot_dates

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "account_features",
    "add_portfolio_features",
    "build_features",
    "build_training_set",
    "catalog_table_markdown",
    "churn_labels",
    "feature_categories",
    "feature_frames",
    "features_for",
    "get",
    "snapshot_dates",
    "timing_labels",
]
