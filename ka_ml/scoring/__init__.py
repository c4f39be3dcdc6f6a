"""Scoring, pure: scores, explanations, lifecycle, health lights, scorecard; the score history.

The weekly job that runs it and writes the outputs is :mod:`ka_ml.jobs.score`.
"""
