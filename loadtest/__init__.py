"""ChatRoom's load generator and benchmarks (`python -m loadtest --help`).

__main__      the command: one subcommand per scenario, each with its own flags
scenarios/    one module per scenario (fanout, dm, soak, ...)
generator     stamped messages, delivery collectors, receiving worker processes
aclient       asyncio clients: ChatRoom's protocol and IRC
servers       the systems under test, started fresh: our stack, ngIRCd
measure       the servers' processes seen from /proc (RSS, peaks, sampling)
results       Result, tables, progress; JSON saved under var/results/
plots         the pictures (matplotlib, when installed)
report        var/results/*.json as Markdown tables
hostile_images  the worst allowed avatars and decompression bombs
"""
