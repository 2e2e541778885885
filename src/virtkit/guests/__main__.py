"""``python -m virtkit.guests build [tiny|disk|tree|iso|all]`` / ``path tiny``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from virtkit.errors import VirtkitError
from virtkit.guests.bootdisk import ensure_boot_disk
from virtkit.guests.media import ensure_iso, ensure_tree
from virtkit.guests.tiny import ensure_tiny, find_tiny


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m virtkit.guests", description="Build the virtkit test guests."
    )
    parser.add_argument("--cache-dir", type=Path, help="guest cache (default ~/.cache/...)")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build what is missing and print the paths")
    build.add_argument(
        "what", nargs="?", default="tiny", choices=["tiny", "disk", "tree", "iso", "all"]
    )
    build.add_argument("--cache-dir", type=Path, dest="sub_cache_dir", help=argparse.SUPPRESS)
    build.add_argument(
        "--refresh", action="store_true", help="ask apt for newer packages and rebuild"
    )
    path = sub.add_parser("path", help="print the paths of a built guest (builds it if needed)")
    path.add_argument("what", choices=["tiny"])
    path.add_argument("--cache-dir", type=Path, dest="sub_cache_dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cache_dir: Path | None = args.sub_cache_dir or args.cache_dir

    try:
        if args.command == "path":
            guest = find_tiny(cache_dir) or ensure_tiny(cache_dir)
            print(f"{guest.kernel}\n{guest.initrd}")
            return 0
        if args.what in ("tiny", "all"):
            guest = ensure_tiny(cache_dir, refresh=args.refresh)
            print(f"kernel {guest.kernel}\ninitrd {guest.initrd}")
            if guest.pvh_kernel is not None:
                print(f"pvh_kernel {guest.pvh_kernel}")
            print(f"version {guest.version}")
        if args.what in ("disk", "all"):
            print(f"boot-disk {ensure_boot_disk(cache_dir)}")
        if args.what in ("tree", "all"):
            print(f"tree {ensure_tree(cache_dir)}")
        if args.what in ("iso", "all"):
            print(f"iso {ensure_iso(cache_dir)}")
    except VirtkitError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
