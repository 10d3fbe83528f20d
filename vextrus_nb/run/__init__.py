"""How a run starts, executes and is refused: runner (papermill, sealing), session (the run
inside the kernel: `vextrus_nb.start`), parameters (declared and given), locks (one
destructive run per environment), naming (run ids and output paths, shared by both sides)."""
