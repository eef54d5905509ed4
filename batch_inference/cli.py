"""`batch-inference` console script: make landing data, and other chores outside Dagster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batch_inference.pipelines import write_landing_file
from batch_inference.settings import load_settings
from batch_inference.validation import InvalidNameError, validate_partition_key


def _cmd_generate(args: argparse.Namespace) -> int:
    landing = Path(args.landing_dir) if args.landing_dir else Path(load_settings().landing_uri)
    options = {"corrupt_rate": args.corrupt_rate, "drift": args.drift}
    if args.drop_column:
        options["drop_column"] = args.drop_column
    path = write_landing_file(validate_partition_key(args.date), args.rows, landing, pipeline=args.pipeline,
                              **options)
    print(path)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """The load-time checks of every pipeline, problems only (what `dg check defs` also runs)."""
    from batch_inference.pipelines import check_pipelines, discover

    errors = check_pipelines()
    for error in errors:
        print(error, file=sys.stderr)
    if not errors:
        print(f"{len(discover())} pipeline(s) checked: no problems")
    return 1 if errors else 0


def _cmd_release_slots(args: argparse.Namespace) -> int:
    """After a SIGKILL: mark dead local runs failed and free the pool slots they held (DAGSTER_HOME)."""
    import dagster as dg

    from batch_inference.slots import release_dead_run_slots

    with dg.DagsterInstance.get() as instance:
        released = release_dead_run_slots(instance)
    for run_id in released:
        print(f"released {run_id}")
    print(f"{len(released)} run(s) released")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch-inference", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write one day of a pipeline's synthetic landing data to landing/")
    gen.add_argument("--pipeline", help="which pipeline's generator (default: the first pipeline, by name, "
                     "that has one)")
    gen.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
    gen.add_argument("--rows", type=int, default=100_000, help="number of rows (default 100000)")
    gen.add_argument("--landing-dir", help="default: $BATCH_INFERENCE_HOME/landing")
    gen.add_argument("--corrupt-rate", type=float, default=0.0, help="fraction of rows made bad on purpose")
    gen.add_argument("--drift", type=float, default=0.0, help="shift the distributions by this strength")
    gen.add_argument("--drop-column", help="leave this column out of the file")
    gen.set_defaults(func=_cmd_generate)
    chk = sub.add_parser("check", help="check every pipeline's YAML, SQL columns, schemas and plug-ins (no run); "
                         "each problem named by file, line and field")
    chk.set_defaults(func=_cmd_check)
    rel = sub.add_parser("release-slots", help="mark runs killed on this machine failed and free their pool slots")
    rel.set_defaults(func=_cmd_release_slots)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rows", 0) < 0 or not 0.0 <= getattr(args, "corrupt_rate", 0.0) <= 1.0:
        print("error: --rows must be >= 0 and --corrupt-rate within [0, 1]", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (InvalidNameError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
