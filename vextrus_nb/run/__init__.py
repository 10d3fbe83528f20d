"""How a run starts, executes and is refused: runner (papermill, headless), session (the run
inside the kernel: `vextrus_nb.start`), parameters (declared and given), locks (one destructive
run per environment), naming (run ids and output paths, shared by both sides), steps (each
runbook's steps module and its checks), interactive (`vextrus-nb open`: working copies, the runs
registry, sealing on save), lab (JupyterLab's contents manager and post-save hook)."""
