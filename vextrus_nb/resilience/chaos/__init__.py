"""Chaos experiments (resilience/chaos): a steady-state hypothesis, a method of faults from a
catalogue, rollbacks that always run, a journal written as the run goes, and the figures an
experiment leaves (time to detect, time to recover, a resilience score).

experiment: the YAML model (parameters/chaos/<name>.yaml); hypothesis: the steady-state probes;
catalogue: each fault's inject and undo, per driver; journal: what is injected, on disk;
engine: the run itself.
"""
