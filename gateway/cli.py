"""The ``gateway`` command.

    gateway demo [--state-dir DIR] [--serve] [--json]
    gateway serve --config gateway.yaml
    gateway contracts check [DIR] [--json]
    gateway keys generate --participant ID --dir DIR
    gateway token new --participant ID

Errors print one line to stderr and exit non-zero (2 for usage, 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__
from gateway.api.auth import new_token
from gateway.config import PARTICIPANT_ID, load_config
from gateway.contracts import load_catalog
from gateway.crypto.keys import PRIVATE_FILE, PrivateKeys, write_participant_keys
from gateway.errors import ConfigError, GatewayError
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

    contracts = commands.add_parser("contracts", help="work with contract files")
    contract_cmds = contracts.add_subparsers(dest="action", required=True)
    check = contract_cmds.add_parser("check", help="load and check every contract file")
    check.add_argument("directory", type=Path, nargs="?", default=Path("contracts"))
    check.add_argument("--json", action="store_true")

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
        return _check_contracts(args.directory, as_json=args.json)
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


def _check_contracts(directory: Path, *, as_json: bool) -> int:
    catalog = load_catalog(directory)
    rows = [
        {
            "contract": c.ref,
            "producers": sorted(c.producers),
            "consumers": sorted(c.consumers),
            "valid_examples": len(c.valid_examples),
            "invalid_examples": len(c.invalid_examples),
        }
        for c in catalog
    ]
    if as_json:
        print(json.dumps({"ok": True, "contracts": rows}, indent=2))
        return 0
    for row in rows:
        print(
            f"ok  {row['contract']:<40} examples: {row['valid_examples']} valid, "
            f"{row['invalid_examples']} invalid"
        )
    print(f"{len(rows)} contract version(s) in {directory} are well-formed")
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
