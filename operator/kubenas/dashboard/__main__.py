"""``python -m kubenas.dashboard [--output FILE [--check]]``: print or write the dashboard's JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grafana import build_dashboard, render, write_dashboard

CHART_FILE = "helm/kubenas/dashboards/kubenas.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubenas.dashboard", description=__doc__)
    parser.add_argument("--output", help=f"the file to write (the chart's: {CHART_FILE}); default: stdout")
    parser.add_argument("--check", action="store_true", help="fail if --output is stale; write nothing")
    args = parser.parse_args(argv)
    if args.output is None:
        if args.check:
            parser.error("--check needs --output")
        sys.stdout.write(render(build_dashboard()))
        return 0
    if not write_dashboard(Path(args.output), args.check):
        print(
            f"stale dashboard (regenerate with `python -m kubenas.dashboard --output {args.output}`): "
            f"{args.output}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
