"""nextedit: build, distil, train, evaluate and serve next-edit-prediction models."""

__version__ = "0.1.0"
