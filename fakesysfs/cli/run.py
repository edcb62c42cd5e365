"""``fakesysfs run [-c TOPOLOGY] [--] COMMAND [ARGS...]``: COMMAND in a private namespace with
the fake at /sys (fakesysfs/run.py does the namespaces, the daemon and the supervision)."""

from __future__ import annotations

import argparse
import os

from ..errors import CliError, NamespaceError, RulesError
from . import common


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser(
        "run", help="run COMMAND in a private namespace with the fake at /sys (and a private /dev, /run)")
    p.add_argument("-c", "--config", metavar="TOPOLOGY.toml", help="topology file (default: the embedded one)")
    p.add_argument("--trace", metavar="FILE", help="append every store (path, bytes, errno) to FILE as JSON lines")
    p.add_argument("--share-net", action="store_true",
                   help="keep the host's network namespace (default: a private one, loopback only)")
    p.add_argument("--log-file", metavar="PATH",
                   help="the daemon's log: each store with its result, each uevent and harness op, kernel "
                        "messages (default: discarded once mounted)")
    p.add_argument("--userns", action="store_true",
                   help="use a user namespace even as root (what runs without root: no mknod, FUSE /dev)")
    p.add_argument("--pin", action="store_true",
                   help="run the daemon and COMMAND on one CPU (several times faster on small VMs)")
    p.add_argument("--rules", action="append", metavar="FILE",
                   help="apply this udev rules file to every uevent, as systemd-udevd would (repeatable)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..run import RunOptions, run

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("no COMMAND given: fakesysfs run [-c TOPOLOGY.toml] [--] COMMAND [ARGS...]")
    common.check_fuse()
    kernel, tree, harness = common.boot(args.config)
    assert kernel is not None and harness is not None
    options = RunOptions(share_net=args.share_net, userns=True if args.userns else None,
                         control_ops=harness.register_control, watch_proc=harness.watch_proc,
                         on_log_file=common.log_to_file)
    if args.rules:
        from ..udev_rules import UdevRules

        try:
            UdevRules.load(args.rules)  # unreadable files and unsupported keys: reported here, once
        except RulesError as exc:
            raise CliError(str(exc)) from None
        options.rules = [os.path.abspath(path) for path in args.rules]
    if args.pin:
        from ..nsops import current_cpu

        options.pin_cpu = current_cpu()
    if args.trace is not None:
        options.trace_fd = common.open_log("trace", args.trace)
    if args.log_file is not None:
        try:
            options.log_fd = common.open_log("log", args.log_file)
        except CliError:
            if options.trace_fd is not None:
                os.close(options.trace_fd)
            raise
    # The daemon's log is the --log-file once /sys is up (COMMAND's stderr stays its own).
    common.start_trace(options.log_fd is not None)
    try:
        return run(kernel, tree, command, options)
    except NamespaceError as exc:
        raise CliError(str(exc)) from None
    finally:
        for fd in (options.trace_fd, options.log_fd):
            if fd is not None:
                os.close(fd)
