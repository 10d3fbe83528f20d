"""The steps of every runbook: `runbooks/<family>/<name>.py` for `notebooks/<family>/<name>.ipynb`
(the eight deploy phases share `runbooks/deploy/phases.py`). A notebook's cells call its own
module; the module may use every engine, and no engine imports it."""
