"""The deployment phases' steps: the eight notebooks notebooks/deploy/0N-*.ipynb are generated
from one shape (vextrus_nb/deploy/notebooks.py), so they share one steps module."""

STEPS_MODULE = "phases"
