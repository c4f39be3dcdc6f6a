"""The weekly batch scorer: scores, explanations, health lights, outputs."""
