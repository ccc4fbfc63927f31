"""The ``gateway`` command.

    gateway demo [--state-dir DIR] [--serve] [--json]
    gateway serve --config gateway.yaml
    gateway contracts lint [DIR] [--json]
    gateway contracts check OLD NEW [--mode MODE] [--policy strict|lenient] [--json]
    gateway contracts export --asyncapi [--out FILE]
    gateway keys generate --participant ID --out DIR [--suite ed25519|p256]
    gateway keys rotate --participant ID --dir DIR [--overlap SECONDS]
    gateway keys revoke --participant ID --dir DIR --kid=KID [--at UNIX_TIME]
    gateway envelope seal --key SENDER.sig.pem --to RECIPIENT.public.jwks.json --contract ID
        [--version V] PAYLOAD.json
    gateway envelope open --key RECIPIENT.enc.pem --from SENDER.public.jwks.json ENVELOPE
    gateway token new (--participant ID | --auditor ID)
    gateway participants submit FILE [--contracts DIR] [--json]
    gateway participants approve FILE --registry DIR (--sponsor-key K | --authority-key K)
    gateway participants suspend|reinstate|revoke ID --registry DIR (--sponsor-key K | ...)
    gateway authority init --out DIR
    gateway audit verify PATH [--key AUDIT.jwks.json] [--expect-head FILE] [--json]
    gateway audit prove (--id MESSAGE_ID | --from-head N [--to-head M]) [--dir DIR] [--out FILE]
    gateway audit check-proof PROOF.json --key AUDIT.jwks.json [--json]
    gateway audit search|export [--dir DIR] [--id ID] [--participant P] [--contract C]
        [--outcome O] [--event E] [--since TIME] [--until TIME]
    gateway audit events [--json]
    gateway dlq list [--after PARTITION:OFFSET] [--limit N] [--participant ID]
    gateway dlq show PARTITION:OFFSET [--participant ID]
    gateway dlq replay (--offset PARTITION:OFFSET ... | --id MESSAGE_ID ... | --all)
        (each: [--node URL] [--token-file FILE] [--json]; the token else from GATEWAY_TOKEN)

Errors print one line to stderr and exit non-zero (2 for usage and for invalid
input to ``contracts check``, 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.api.auth import new_token
from gateway.config import PARTICIPANT_ID, load_config
from gateway.contracts.commands import check_command, export_command, lint_command
from gateway.contracts.compat import Mode, Policy
from gateway.crypto import commands as keycmd
from gateway.crypto.jwk import Suite
from gateway.crypto.keys import passphrase, read_public
from gateway.errors import ConfigError, GatewayError, InvalidContract, TransportError
from gateway.logs import configure_logging

if TYPE_CHECKING:
    from gateway.node import RunningNode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Interagency data-exchange gateway: contract-checked, signed and encrypted "
        "message exchange over Kafka.",
    )
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

    _key_commands(commands)
    _envelope_commands(commands)

    _audit_commands(commands)
    _dlq_commands(commands)

    participants = commands.add_parser("participants", help="participant files and onboarding")
    participant_cmds = participants.add_subparsers(dest="action", required=True)
    submit = participant_cmds.add_parser(
        "submit", help="check a participant file and print what is missing"
    )
    submit.add_argument("file", type=Path, help="the participant file (YAML)")
    submit.add_argument(
        "--contracts", type=Path, help="check entitlements here (default: ./contracts if any)"
    )
    submit.add_argument("--json", action="store_true")
    approve = participant_cmds.add_parser(
        "approve", help="sign a participant file into the registry (sponsor or authority)"
    )
    approve.add_argument("file", type=Path, help="the participant file (YAML)")
    approve.add_argument("--contracts", type=Path, help="default: ./contracts if any")
    for action in ("suspend", "reinstate", "revoke"):
        sub = participant_cmds.add_parser(action, help=f"{action} a participant (a new record)")
        sub.add_argument("participant")
        _signer_arguments(sub)
    _signer_arguments(approve)
    listing = participant_cmds.add_parser("list", help="who the registry holds, and in what state")
    listing.add_argument("--registry", type=Path, required=True, help="the registry directory")
    listing.add_argument("--json", action="store_true")
    push = participant_cmds.add_parser(
        "publish", help="produce every record of a registry directory to the registry topic"
    )
    push.add_argument("--registry", type=Path, required=True, help="the registry directory")
    push.add_argument(
        "--config", type=Path, required=True, help="a node config naming the Kafka cluster"
    )

    authority = commands.add_parser("authority", help="the registry's trust anchor")
    authority_cmds = authority.add_subparsers(dest="action", required=True)
    init = authority_cmds.add_parser("init", help="a new authority key and trust anchor")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument(
        "--passphrase-file", type=Path, help="default: the GATEWAY_KEY_PASSPHRASE variable"
    )

    token = commands.add_parser("token", help="bearer tokens")
    token_cmds = token.add_subparsers(dest="action", required=True)
    new = token_cmds.add_parser("new", help="a new token and the digest for the config")
    who = new.add_mutually_exclusive_group(required=True)
    who.add_argument("--participant", help="a participant this node hosts")
    who.add_argument(
        "--auditor", help="a security team member: reads the audit trail and dead letters only"
    )
    return parser


def _key_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="participant keys: generate, rotate, revoke")
    actions = keys.add_subparsers(dest="action", required=True)
    generate = actions.add_parser("generate", help="new signing + encryption keys")
    generate.add_argument("--participant", required=True)
    generate.add_argument("--out", type=Path, required=True, help="keys directory")
    generate.add_argument(
        "--suite",
        choices=[s.value for s in Suite],
        default="ed25519",
        help="ed25519 (EdDSA + X25519, default) or p256 (ES256 + P-256)",
    )
    rotate = actions.add_parser("rotate", help="new current keys; old ones verify for a while")
    rotate.add_argument("--participant", required=True)
    rotate.add_argument("--dir", type=Path, required=True, help="keys directory")
    rotate.add_argument(
        "--overlap",
        type=int,
        default=7 * 86400,
        help="seconds the old signing key stays valid (default 7 days)",
    )
    revoke = actions.add_parser("revoke", help="refuse what a signing kid signs from a time on")
    revoke.add_argument("--participant", required=True)
    revoke.add_argument("--dir", type=Path, required=True, help="keys directory")
    revoke.add_argument("--kid", required=True, help="write --kid=KID: a kid may start with -")
    revoke.add_argument("--at", type=int, help="Unix time of the revocation (default: now)")
    for sub in (generate, rotate):
        sub.add_argument(
            "--passphrase-file", type=Path, help="default: the GATEWAY_KEY_PASSPHRASE variable"
        )
    for sub in (generate, rotate, revoke):
        sub.add_argument(
            "--config",
            type=Path,
            help="record the change in this node's audit log (run while the node is stopped)",
        )


def _signer_arguments(sub: Any) -> None:
    sub.add_argument("--registry", type=Path, required=True, help="the registry directory")
    who = sub.add_mutually_exclusive_group(required=True)
    who.add_argument("--sponsor-key", type=Path, help="the sponsoring agency's SPONSOR.sig.pem")
    who.add_argument("--authority-key", type=Path, help="the authority's authority.pem")
    sub.add_argument(
        "--passphrase-file", type=Path, help="default: the GATEWAY_KEY_PASSPHRASE variable"
    )
    sub.add_argument(
        "--publish",
        type=Path,
        metavar="CONFIG",
        help="also produce the new record to the registry topic of this node config's cluster",
    )


def _participants(args: argparse.Namespace) -> int:
    from gateway.participants import commands as pcmd  # noqa: PLC0415

    if args.action == "submit":
        return pcmd.submit_command(
            args.file, contracts=args.contracts, as_json=args.json, say=print
        )
    if args.action == "list":
        return pcmd.list_command(args.registry, as_json=args.json, say=print)
    if args.action == "publish":
        publish = _registry_topic(args.config)
        records = pcmd.records_in(args.registry)
        publish(records)
        return 0
    secret = passphrase(os.environ, args.passphrase_file)
    key = args.authority_key or args.sponsor_key
    signer = pcmd.load_signer(key, authority=args.authority_key is not None, secret=secret)
    now = int(time.time())
    publish = _registry_topic(args.publish) if args.publish else pcmd.no_topic
    if args.action == "approve":
        return pcmd.approve_command(
            args.file,
            registry_dir=args.registry,
            signer=signer,
            contracts=args.contracts,
            now=now,
            say=print,
            publish=publish,
        )
    return pcmd.status_command(
        args.action,
        args.participant,
        registry_dir=args.registry,
        signer=signer,
        now=now,
        say=print,
        publish=publish,
    )


def _registry_topic(config_path: Path) -> Callable[[Sequence[Any]], None]:
    """Produce records to the registry topic of the cluster a node config names."""
    from gateway.participants.topic import publish_records  # noqa: PLC0415

    config = load_config(config_path)
    if not config.kafka.bootstrap:
        raise ConfigError(f"{config_path}: kafka.bootstrap names no cluster to publish to")

    def publish(records: Sequence[Any]) -> None:
        try:
            asyncio.run(publish_records(config, records))
        except TransportError as exc:
            raise TransportError(
                f"{exc.detail}; the registry directory is up to date: "
                f"run 'gateway participants publish' once the cluster is back"
            ) from exc
        noun = "record" if len(records) == 1 else "records"
        print(f"published {len(records)} {noun} to {config.registry_topic} at {bootstrap}")

    bootstrap = config.kafka.bootstrap

    return publish


def _authority(args: argparse.Namespace) -> int:
    from gateway.participants.commands import authority_init_command  # noqa: PLC0415

    secret = passphrase(os.environ, args.passphrase_file)
    return authority_init_command(args.out, secret=secret, say=print)


def _audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify, prove, search and export the audit trail")
    actions = audit.add_subparsers(dest="action", required=True)
    check = actions.add_parser("verify", help="recompute the log and check every signed head")
    check.add_argument("path", type=Path, help="the node's audit directory")
    check.add_argument("--key", type=Path, help="the node's audit public key (JWK Set)")
    check.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept records newer than the last signed head (a running node's log)",
    )
    check.add_argument(
        "--expect-head",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a signed head kept elsewhere (e.g. from the audit topic) the log must match",
    )
    check.add_argument("--json", action="store_true")
    prove = actions.add_parser("prove", help="an inclusion or consistency proof, as JSON")
    what = prove.add_mutually_exclusive_group(required=True)
    what.add_argument("--id", dest="message_id", help="prove every record of this message")
    what.add_argument("--from-head", type=int, help="prove the log at this head was kept")
    prove.add_argument("--to-head", type=int, help="with --from-head (default: the newest)")
    prove.add_argument("--dir", type=Path, default=Path("audit"), help="default: ./audit")
    prove.add_argument("--out", type=Path, help="write here instead of standard output")
    proof = actions.add_parser("check-proof", help="check a proof offline with the public key")
    proof.add_argument("proof", type=Path, help="the proof file, or - for standard input")
    proof.add_argument("--key", type=Path, required=True, help="the node's audit JWK Set")
    proof.add_argument("--json", action="store_true")
    for name, helptext in (
        ("search", "find records by message, participant, contract, outcome or time"),
        ("export", "write matching records as JSON Lines, for SIEM tools"),
    ):
        sub = actions.add_parser(name, help=helptext)
        sub.add_argument("--dir", type=Path, default=Path("audit"), help="default: ./audit")
        sub.add_argument("--id", dest="message_id")
        sub.add_argument("--participant", help="as sender, recipient or actor")
        sub.add_argument("--contract", help="ID (any version) or ID@VERSION")
        sub.add_argument("--outcome", help="accepted, rejected, delivered, acknowledged, ...")
        sub.add_argument("--event", help="an event name, e.g. message.rejected")
        sub.add_argument("--since", help="RFC 3339 time or date (inclusive)")
        sub.add_argument("--until", help="RFC 3339 time or date (exclusive)")
        if name == "search":
            sub.add_argument("--limit", type=int, default=100)
            sub.add_argument("--json", action="store_true")
        else:
            sub.add_argument("--out", type=Path, help="default: standard output")
    events = actions.add_parser("events", help="the audit event catalogue")
    events.add_argument("--json", action="store_true")


def _audit(args: argparse.Namespace) -> int:
    from gateway.audit import commands as auditcmd  # noqa: PLC0415

    if args.action == "verify":
        return auditcmd.verify_command(
            args.path,
            key=args.key,
            allow_unsigned=args.allow_unsigned,
            expect=args.expect_head,
            as_json=args.json,
            say=print,
        )
    if args.action == "prove":
        return auditcmd.prove_command(
            args.dir,
            message_id=args.message_id,
            from_head=args.from_head,
            to_head=args.to_head,
            out=args.out,
            say=print,
        )
    if args.action == "check-proof":
        return auditcmd.check_proof_command(args.proof, key=args.key, as_json=args.json, say=print)
    if args.action == "events":
        return auditcmd.events_command(as_json=args.json, say=print)
    return _audit_search(args)


def _audit_search(args: argparse.Namespace) -> int:
    from gateway.audit import commands as auditcmd  # noqa: PLC0415

    query = _query(args)
    if query is None:
        return 2
    if args.action == "search":
        if not 1 <= args.limit <= 10_000:
            print("gateway: invalid input: --limit must be between 1 and 10000", file=sys.stderr)
            return 2
        return auditcmd.search_command(
            args.dir, query, limit=args.limit, as_json=args.json, say=print
        )
    return auditcmd.export_command(args.dir, query, out=args.out, say=print)


def _query(args: argparse.Namespace) -> Any:
    """The search filters, or None after saying which one is unusable."""
    from gateway.audit.search import Query, parse_time  # noqa: PLC0415

    times = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        try:
            times[name] = parse_time(text) if text else None
        except ValueError as exc:
            print(f"gateway: invalid input: --{name}: {exc}", file=sys.stderr)
            return None
    return Query(
        message_id=args.message_id,
        participant=args.participant,
        contract=args.contract,
        outcome=args.outcome,
        event=args.event,
        since=times["since"],
        until=times["until"],
    )


def _dlq_commands(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="dead letters on a running node: list, show, replay")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="a page of dead letters, in offset order")
    listing.add_argument("--after", metavar="PARTITION:OFFSET", type=_position)
    listing.add_argument("--limit", type=int, default=100, help="default 100, at most 1000")
    show = actions.add_parser("show", help="one dead letter")
    show.add_argument("position", metavar="PARTITION:OFFSET", type=_position)
    replay = actions.add_parser("replay", help="put dead letters back into the inbox")
    what = replay.add_mutually_exclusive_group(required=True)
    what.add_argument("--offset", action="append", type=_position, metavar="PARTITION:OFFSET")
    what.add_argument("--id", action="append", dest="message_ids", metavar="MESSAGE_ID")
    what.add_argument("--all", action="store_true", help="every entry not replayed yet")
    for sub in (listing, show):
        sub.add_argument("--participant", help="an auditor names whose dead letters to read")
    for sub in (listing, show, replay):
        sub.add_argument("--node", default="http://127.0.0.1:8080", help="the node's base URL")
        sub.add_argument("--token-file", type=Path, help="default: the GATEWAY_TOKEN variable")
        sub.add_argument("--json", action="store_true")


def _position(text: str) -> Any:
    from gateway.dlq import Position  # noqa: PLC0415

    try:
        return Position.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dlq(args: argparse.Namespace) -> int:
    from gateway import dlq_commands as dlqcmd  # noqa: PLC0415

    node = dlqcmd.node_of(args.node, args.token_file, os.environ)
    if args.action == "list":
        after = str(args.after) if args.after else None
        return dlqcmd.list_command(
            node,
            participant=args.participant,
            after=after,
            limit=args.limit,
            as_json=args.json,
            say=print,
        )
    if args.action == "show":
        return dlqcmd.show_command(
            node, args.position, participant=args.participant, as_json=args.json, say=print
        )
    return dlqcmd.replay_command(
        node,
        positions=args.offset or (),
        message_ids=args.message_ids or (),
        everything=args.all,
        as_json=args.json,
        say=print,
    )


def _envelope_commands(commands: Any) -> None:
    envelope = commands.add_parser("envelope", help="seal and open envelopes offline")
    actions = envelope.add_subparsers(dest="action", required=True)
    seal = actions.add_parser("seal", help="print the Kafka record value for a payload")
    seal.add_argument("--key", type=Path, required=True, help="SENDER.sig.pem")
    seal.add_argument("--to", type=Path, required=True, help="RECIPIENT.public.jwks.json")
    seal.add_argument("--contract", required=True)
    seal.add_argument("--version", help="default: the latest in the contracts directory")
    seal.add_argument("--contracts", type=Path, help="validate against these contracts")
    seal.add_argument("payload", type=Path, help="PAYLOAD.json, or - for standard input")
    opened = actions.add_parser("open", help="verify an envelope and print header and payload")
    opened.add_argument("--key", type=Path, required=True, help="RECIPIENT.enc.pem")
    opened.add_argument(
        "--from", dest="sender", type=Path, required=True, help="SENDER.public.jwks.json"
    )
    opened.add_argument("--json", action="store_true")
    opened.add_argument("envelope", type=Path, help="the envelope file, or - for standard input")
    for sub in (seal, opened):
        sub.add_argument(
            "--passphrase-file", type=Path, help="default: the GATEWAY_KEY_PASSPHRASE variable"
        )


def _keys(args: argparse.Namespace) -> int:
    if args.config is None:
        return _key_action(args)
    from gateway.audit.keys import beside_node, operator  # noqa: PLC0415

    config = load_config(args.config)
    secret = passphrase(os.environ, config.key_passphrase_file)
    directory = args.out if args.action == "generate" else args.dir
    with beside_node(config, secret) as audit:
        before = _kids(directory, args.participant)
        status = _key_action(args)
        if status != 0:
            return status
        public = read_public(directory / f"{args.participant}.public.jwks.json")
        fields: dict[str, Any] = {"owner": args.participant, "by": operator()}
        if args.action == "revoke":
            key = public.verify_key(args.kid)
            fields |= {"kid": args.kid, "revoked_at": key.revoked_at if key else None}
        else:
            fields["kids"] = [public.signing[0].kid, public.encryption[0].kid]
        if args.action == "generate":
            audit.record("key.generated", purpose="participant", **fields)
        elif args.action == "rotate":
            retired = sorted(before - set(fields["kids"]))
            audit.record("key.rotated", retired=retired, overlap_s=args.overlap, **fields)
        else:
            audit.record("key.revoked", **fields)
        print(f"recorded {'key.' + args.action + 'd'} in the audit log {config.audit.dir}")
    return 0


def _kids(directory: Path, participant: str) -> set[str]:
    path = directory / f"{participant}.public.jwks.json"
    if not path.exists():
        return set()
    public = read_public(path)
    return {k.kid for k in public.signing} | {k.kid for k in public.encryption}


def _key_action(args: argparse.Namespace) -> int:
    if args.action == "generate":
        return keycmd.generate_command(
            participant=args.participant,
            out=args.out,
            suite=Suite(args.suite),
            file=args.passphrase_file,
            say=print,
        )
    if args.action == "rotate":
        return keycmd.rotate_command(
            participant=args.participant,
            directory=args.dir,
            overlap_s=args.overlap,
            file=args.passphrase_file,
            say=print,
        )
    return keycmd.revoke_command(
        participant=args.participant, directory=args.dir, kid=args.kid, at=args.at, say=print
    )


def _envelope(args: argparse.Namespace) -> int:
    if args.action == "seal":
        return keycmd.seal_command(
            key=args.key,
            to=args.to,
            contract=args.contract,
            version=args.version,
            payload=args.payload,
            contracts=args.contracts,
            file=args.passphrase_file,
            say=print,
        )
    return keycmd.open_command(
        key=args.key,
        sender_keys=args.sender,
        envelope=args.envelope,
        file=args.passphrase_file,
        as_json=args.json,
        say=print,
    )


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
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": _demo,
        "serve": lambda a: _serve(a.config),
        "contracts": _contracts,
        "keys": _keys,
        "envelope": _envelope,
        "audit": _audit,
        "dlq": _dlq,
        "participants": _participants,
        "authority": _authority,
        "token": lambda a: _new_token(a.participant or a.auditor, auditor=a.auditor is not None),
    }
    return commands[args.command](args)


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
                loop.add_signal_handler(signal.SIGHUP, _reload_credentials, node, config_path)
                await stop.wait()

    asyncio.run(serve())
    return 0


def _reload_credentials(node: RunningNode, config_path: Path) -> None:
    """SIGHUP: read the config again and take its tokens and certificate fingerprints."""
    try:
        ignored = node.reload_credentials(load_config(config_path))
    except GatewayError as exc:
        print(f"gateway: credentials not reloaded: {exc.detail}", file=sys.stderr)
        return
    print("gateway: credentials reloaded", file=sys.stderr)
    if ignored:
        print(f"gateway: restart to apply the other changes: {', '.join(ignored)}", file=sys.stderr)


def _new_token(name: str, *, auditor: bool) -> int:
    kind = "auditor" if auditor else "participant"
    if not PARTICIPANT_ID.fullmatch(name):
        raise ConfigError(f"'{name}' is not a valid {kind} id")
    token, digest = new_token()
    print(f"token for {name} (give it to them; it is not stored):\n  {token}")
    print(f"add to the node config under {kind}s -> {name} -> token_sha256:\n  {digest}")
    print(
        "to rotate: list it beside the old digest, send the node SIGHUP (no restart), "
        "hand the token over, then remove the old digest and send SIGHUP again"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
