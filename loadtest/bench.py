"""The old name of the benchmark command: `python -m loadtest.bench SCENARIO ...` is
`python -m loadtest SCENARIO ...` (loadtest/__main__.py)."""

from loadtest.__main__ import main

if __name__ == "__main__":
    main(prog="python -m loadtest.bench")
