"""``meshforge``: the command line of the meshforge API (a thin layer over meshforge.client.Client).

meshforge generate "a red cube" -o cube.glb
meshforge from-image front.png right.png back.png left.png -o chair.obj.zip
meshforge status JOB | jobs | cancel JOB | download JOB -o FILE [--format F] | health
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from meshforge.client import commands
from meshforge.client.config import API_VARIABLE, DEFAULT_API, KEY_VARIABLE
from meshforge.client.errors import ClientError, InvalidImages
from meshforge.client.output import Output
from meshforge.client.sync import Client
from meshforge.schemas import JobState, Origin, OutputFormat, QualityTier

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_API_ERROR = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

EPILOG = f"""\
exit codes:
  0  done (generate and from-image with --wait: the job completed)
  1  the job failed or was cancelled (its message is on stderr)
  2  bad usage: an unknown option, a wrong number of images, a missing file, -o and --format disagree
  3  the API refused the request, could not be reached, or the job outlasted --timeout

environment:
  {API_VARIABLE}      the API's base URL (default {DEFAULT_API}); --api overrides it
  {KEY_VARIABLE}  the API key, sent as 'Authorization: Bearer <key>'; --key overrides it
"""


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--api, --key and --json, accepted before or after the command: the copy on each command has no
    defaults (SUPPRESS), so it sets them only when given there."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--api", metavar="URL", default=default(None), help=f"API base URL (default: ${API_VARIABLE})"
    )
    parser.add_argument(
        "--key", metavar="KEY", default=default(None), help=f"API key (default: ${KEY_VARIABLE})"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the answer as JSON on stdout, and nothing else there",
    )


def _job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="download the asset here once done; its suffix picks the format "
        "(.glb .obj.zip/.obj .fbx .stl .usdz) unless --format is given",
    )
    formats = [f.value for f in OutputFormat]
    parser.add_argument("--format", choices=formats, help="output format (default: glb, or -o's suffix)")
    parser.add_argument("--tier", choices=[t.value for t in QualityTier], default=QualityTier.standard.value)
    parser.add_argument("--seed", type=int, help="same seed, same input: same asset")
    parser.add_argument("--faces", type=int, metavar="N", help="polygon budget (100-2000000)")
    parser.add_argument("--origin", choices=[o.value for o in Origin], default=Origin.bottom.value)
    parser.add_argument("--height-m", type=float, metavar="M", help="scale the asset to this height")
    parser.add_argument("--webhook-url", metavar="URL", help="the server POSTs the final record here")
    parser.add_argument("--idempotency-key", metavar="KEY", help="default: a new one per submit")
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the job to end, with a progress bar on stderr (default); "
        "--no-wait prints the job id at once",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="give up waiting after S seconds"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshforge",
        description="Text or images to 3D assets, through a meshforge server's API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, suppress=False)
    shared = argparse.ArgumentParser(add_help=False)
    _global_options(shared, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name, help=help, description=help, parents=[shared], epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        parser.set_defaults(command_parser=parser)  # its usage line goes with its errors
        return parser

    generate = command("generate", "prompt → 3D asset")
    generate.add_argument("prompt", help='what to make, e.g. "a red cube"')
    _job_options(generate)
    from_image = command("from-image", "1, 4 or 8 views (files or http(s) URLs, canonical order) → 3D")
    from_image.add_argument("images", nargs="+", metavar="IMAGE")
    _job_options(from_image)
    status = command("status", "a job's record")
    status.add_argument("job_id", metavar="JOB")
    status.add_argument("--wait", type=float, default=0.0, metavar="S", help="wait up to S s for its end")
    jobs = command("jobs", "recent jobs, newest first")
    jobs.add_argument("--state", choices=[s.value for s in JobState])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--offset", type=int, default=0)
    cancel = command("cancel", "cancel a queued or running job")
    cancel.add_argument("job_id", metavar="JOB")
    download = command("download", "download a completed job's asset")
    download.add_argument("job_id", metavar="JOB")
    download.add_argument("-o", "--output", default=".", metavar="FILE", help="file or folder (default: .)")
    download.add_argument("--preview", action="store_true", help="the PNG preview instead of the asset")
    download.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        help="another of the job's formats, converted from the same mesh (default: the job's own)",
    )
    command("health", "the server's and its stages' health")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits 2
    out = Output(args.json)
    try:
        plan = commands.plan(args)
    except (commands.UsageError, InvalidImages) as error:
        args.command_parser.error(str(error))  # exits 2
    try:
        with Client(args.api, api_key=args.key) as client:
            return commands.run(client, args, plan, out)
    except ClientError as error:
        out.failure(error)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        out.note("interrupted (a submitted job goes on on the server: meshforge cancel JOB stops it)")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
