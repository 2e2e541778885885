"""python -m bench [lifecycle]: run the benchmarks (see bench/lifecycle.py)."""

import sys

from bench import lifecycle

sys.exit(lifecycle.main(sys.argv[1:] if sys.argv[1:2] != ["lifecycle"] else sys.argv[2:]))
