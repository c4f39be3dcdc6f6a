"""The synthetic demo world: a seeded key-account portfolio with known ground truth."""

from ka_ml.demo.world import TABLES, TRUTH_PATH, DemoWorld, generate_world, write_world

__all__ = ["TABLES", "TRUTH_PATH", "DemoWorld", "generate_world", "write_world"]
