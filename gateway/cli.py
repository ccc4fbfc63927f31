"""The ``gateway`` command.

    gateway demo [--state-dir DIR] [--serve] [--json]
    gateway serve --config gateway.yaml
    gateway contracts lint [DIR] [--json]
    gateway contracts check OLD NEW [--mode MODE] [--policy strict|lenient] [--json]
    gateway contracts export --asyncapi [--out FILE]
    gateway keys generate --participant ID --dir DIR
    gateway token new --participant ID

Errors print one line to stderr and exit non-zero (2 for usage and for invalid
input to ``contracts check``, 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.api.auth import new_token
from gateway.config import PARTICIPANT_ID, load_config
from gateway.contracts.commands import check_command, export_command, lint_command
from gateway.contracts.compat import Mode, Policy
from gateway.crypto.keys import PRIVATE_FILE, PrivateKeys, write_participant_keys
from gateway.errors import ConfigError, GatewayError, InvalidContract
from gateway.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the end-to-end demo on the embedded broker")
    demo.add_argument("--state-dir", type=Path, help="keep keys, tokens and logs here")
    demo.add_argument("--contracts", type=Path, help="contracts directory (default: ./contracts)")
    demo.add_argument("--serve", action="store_true", help="keep the node running afterwards")
    demo.add_argument("--port", type=int, default=0, help="HTTP port (default: any free port)")
    demo.add_argument("--json", action="store_true", help="print a machine-readable summary")

    serve = commands.add_parser("serve", help="run a node")
    serve.add_argument("--config", type=Path, required=True, help="node config (YAML)")

    _contract_commands(commands)

    keys = commands.add_parser("keys", help="participant keys")
    key_cmds = keys.add_subparsers(dest="action", required=True)
    generate = key_cmds.add_parser("generate", help="new Ed25519 + X25519 keys for a participant")
    generate.add_argument("--participant", required=True)
    generate.add_argument("--dir", type=Path, required=True, help="keys directory")

    token = commands.add_parser("token", help="bearer tokens")
    token_cmds = token.add_subparsers(dest="action", required=True)
    new = token_cmds.add_parser("new", help="a new token and the digest for the config")
    new.add_argument("--participant", required=True)
    return parser


def _contract_commands(commands: Any) -> None:
    contracts = commands.add_parser("contracts", help="work with contract files")
    actions = contracts.add_subparsers(dest="action", required=True)
    lint = actions.add_parser("lint", help="check every contract file and their history")
    lint.add_argument("directory", type=Path, nargs="?", default=Path("contracts"))
    lint.add_argument("--json", action="store_true")
    check = actions.add_parser("check", help="compatibility of two contract or schema files")
    check.add_argument("old", type=Path)
    check.add_argument("new", type=Path)
    check.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        help="default: the old contract's mode, else backward",
    )
    check.add_argument(
        "--policy",
        choices=[p.value for p in Policy],
        help="default: the old contract's policy, else strict",
    )
    check.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="describe the contracts for other tools")
    export.add_argument(
        "--asyncapi",
        action="store_true",
        required=True,
        help="an AsyncAPI 3 document of the inbox channels",
    )
    export.add_argument("--contracts", type=Path, default=Path("contracts"))
    export.add_argument("--prefix", default="gw.")
    export.add_argument("--bootstrap", help="Kafka server to name in the document")
    export.add_argument("--out", type=Path, help="write here instead of standard output")


def _contracts(args: argparse.Namespace) -> int:
    if args.action == "lint":
        return lint_command(args.directory, as_json=args.json, say=print)
    if args.action == "check":
        try:
            return check_command(
                args.old,
                args.new,
                mode=Mode(args.mode) if args.mode else None,
                policy=Policy(args.policy) if args.policy else None,
                as_json=args.json,
                say=print,
            )
        except InvalidContract as exc:
            print(f"gateway: invalid input: {exc.detail}", file=sys.stderr)
            return 2
    return export_command(
        args.contracts, prefix=args.prefix, bootstrap=args.bootstrap, out=args.out, say=print
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except GatewayError as exc:
        print(f"gateway: error: {exc.detail}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path the user named cannot be read or written
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    if args.command == "serve":
        return _serve(args.config)
    if args.command == "contracts":
        return _contracts(args)
    if args.command == "keys":
        return _generate_keys(args.participant, args.dir)
    return _new_token(args.participant)


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import demo  # noqa: PLC0415 - keeps the other commands' start-up light

    log_target = None
    if args.state_dir:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        log_target = (args.state_dir / "node.log").open("a", encoding="utf-8")
    try:
        configure_logging(log_target or open("/dev/null", "w"))  # noqa: SIM115
        return asyncio.run(
            demo(
                state_dir=args.state_dir,
                contracts_dir=args.contracts,
                serve=args.serve,
                port=args.port,
                as_json=args.json,
                say=print,
            )
        )
    finally:
        if log_target:
            log_target.close()


def _serve(config_path: Path) -> int:
    from gateway.node import kafka_for, running_node  # noqa: PLC0415

    configure_logging()
    config = load_config(config_path)

    async def serve() -> None:
        with kafka_for(config) as live:
            async with running_node(live) as node:
                print(
                    f"gateway: serving {node.url} (Kafka {live.kafka.bootstrap})", file=sys.stderr
                )
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()

    asyncio.run(serve())
    return 0


def _generate_keys(participant: str, directory: Path) -> int:
    if not PARTICIPANT_ID.fullmatch(participant):
        raise ConfigError(f"'{participant}' is not a valid participant id")
    if (directory / participant / PRIVATE_FILE).exists():
        raise ConfigError(f"{directory / participant / PRIVATE_FILE} exists; not overwriting")
    keys = PrivateKeys.generate()
    folder = write_participant_keys(directory, participant, keys)
    print(
        f"wrote {folder}/ (signing kid {keys.signing.kid}, "
        f"encryption kid {keys.decryption[0].kid}); the private file is mode 600"
    )
    return 0


def _new_token(participant: str) -> int:
    if not PARTICIPANT_ID.fullmatch(participant):
        raise ConfigError(f"'{participant}' is not a valid participant id")
    token, digest = new_token()
    print(f"token for {participant} (give it to them; it is not stored):\n  {token}")
    print(
        f"add to the node config under participants -> {participant} -> token_sha256:\n  {digest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
