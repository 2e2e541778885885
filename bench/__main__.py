"""python -m bench [all|lifecycle|storage|migrate] [options]: run the benchmarks.

``all`` is the side-by-side run (bench/all.py); the others are the focused scripts.
Without a name, ``lifecycle`` runs (as before).
"""

import importlib
import sys

NAMES = ("all", "lifecycle", "storage", "migrate")

args = sys.argv[1:]
name = args.pop(0) if args and args[0] in NAMES else "lifecycle"
sys.exit(importlib.import_module(f"bench.{name}").main(args))
