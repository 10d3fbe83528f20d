"""What every `vextrus-nb` command's exit status means, as `vextrus-nb run` defines it: a
scheduler and a shell script read the same three (and `submit --wait` one more)."""

EXIT_PASSED = 0  # done, and it passed (or the command did what was asked)
EXIT_FAILED = 1  # it ran and failed, or found something broken (ledger verify, control status)
EXIT_REFUSED = 2  # refused before anything was touched: bad input, a guard, a held lock
EXIT_WAIT_TIMEOUT = 3  # `submit --wait`: the run is still going when the wait gave up
