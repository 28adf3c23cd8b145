"""One module per benchmark scenario. Each has `add_parsers(subparsers, server, out)`,
which adds its subcommand(s) to `python -m loadtest` with their own flags (the parent
parsers `server` and `out` bring --db/--set and --out), and a function per subcommand
that runs it, prints a table and saves its results."""
