"""Runs every stand-in until SIGTERM or SIGINT, for shell scripts.

    python3 -m tests.standins --state /tmp/standins.json [--dump /tmp/journal.json]
        [--fixtures FILE] [--workdir DIR] [--token-lifetime SECONDS]
        [--msi-expires-on string|number|date] [--ingestion-entra-only]

Once every server listens, the state file appears (written atomically): base
URLs, CA path, credentials, instrumentation key, and `env` / `credential_env`,
the settings to hand a handler (stack.Stack.describe()). A script waits for the
file, exports `env` (plus one `credential_env` entry), runs the handler, then
sends SIGTERM; with --dump, the journals and accepted telemetry are written
there before exit (stack.Stack.dump()). Example:

    python3 -m tests.standins --state "$state" --dump "$dump" & pid=$!
    while [ ! -s "$state" ]; do sleep 0.1; done
    eval "$(python3 -c 'import json,shlex,sys; [print(f"export {k}={shlex.quote(v)}")
            for k, v in json.load(open(sys.argv[1]))["env"].items()]' "$state")"
    ...; kill -TERM "$pid"; wait "$pid"
"""

import argparse
import json
import os
import pathlib
import signal
import threading

from .fixtures import DEFAULT_FIXTURES
from .msi import EXPIRES_ON_FORMATS
from .stack import Stack


def _write_json(path: pathlib.Path, document: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m tests.standins",
                                     description="Run the Azure stand-ins until SIGTERM.")
    parser.add_argument("--state", type=pathlib.Path, required=True,
                        help="JSON file to write URLs, CA, credentials and env into")
    parser.add_argument("--dump", type=pathlib.Path,
                        help="JSON file to write journals and telemetry into on exit")
    parser.add_argument("--fixtures", type=pathlib.Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--workdir", type=pathlib.Path,
                        help="where certificates go (default: a temporary directory)")
    parser.add_argument("--token-lifetime", type=int, default=3599,
                        help="expires_in of Entra ID tokens, seconds")
    parser.add_argument("--msi-expires-on", choices=EXPIRES_ON_FORMATS, default="string")
    parser.add_argument("--ingestion-entra-only", action="store_true",
                        help="ingestion requires an Entra ID token")
    args = parser.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Stack(fixtures=args.fixtures, workdir=args.workdir,
               token_lifetime=args.token_lifetime, msi_expires_on=args.msi_expires_on,
               ingestion_entra_only=args.ingestion_entra_only) as stack:
        _write_json(args.state, stack.describe())
        print(f"stand-ins ready: {args.state}", flush=True)
        stop.wait()
        if args.dump is not None:
            _write_json(args.dump, stack.dump())


if __name__ == "__main__":
    main()
