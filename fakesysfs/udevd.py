"""The emulated systemd-udevd of ``fakesysfs run``'s daemon: udev rules applied to each
uevent, then the result broadcast to libudev listeners (``fakesysfs/netlink.py``), beside
the control socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import NotPrivateNetns, RulesError
from .netlink import NetlinkForwarder, NetlinkSender, Processor

if TYPE_CHECKING:
    from .control import ServerOps
    from .engine import Kernel
    from .sysfs.tree import Tree

__all__ = ["start_event_services", "start_netlink_forwarder"]

log = logging.getLogger(__name__)


def start_netlink_forwarder(kernel: Kernel, rules: Sequence[str] = (), sysfs_root: str = "/sys", *,
                            require_private_netns: bool = True) -> NetlinkForwarder:
    """Broadcast ``kernel``'s uevents as udevd would, after applying udev ``rules`` files
    (none: the events as they are); for ``fakesysfs run``'s daemon, inside its private
    network namespace. ATTR writes of the rules go through ``sysfs_root`` (the mount), so
    this must not be called from the FUSE thread's request handling. Raises
    NotPrivateNetns in the host's namespace, OSError if the socket cannot be made, and
    udev_rules.RulesError for unreadable rules files."""
    processor: Processor | None = None
    if rules:
        from .udev_rules import RulesRunner, UdevRules

        runner = RulesRunner(UdevRules.load(rules), sysfs_root)
        processor = runner.process
    sender = NetlinkSender(require_private_netns=require_private_netns)
    return NetlinkForwarder(kernel.events, sender, processor).start()


def start_event_services(kernel: Kernel, *, rules: Sequence[str] = (), netlink: bool = True,
                         sysfs_root: str = "/sys", report_unsupported: bool = False,
                         control_ops: ServerOps | None = None, tree: Tree | None = None) -> Callable[[], None]:
    """What ``fakesysfs run``'s daemon adds once its mount is live: the control socket
    (``fakesysfs monitor /sys`` inside; ``control_ops`` registers more ops on it, the
    harness's; its path is shown in ``tree``), and an emulated udevd that applies ``rules``
    and broadcasts libudev netlink messages (only with ``netlink``, i.e. in a private
    network namespace). Call it from the
    FUSE ready callback: it does not touch the mount itself. Returns a function that stops
    everything; failures cost a warning, not the run."""
    from .control import ControlServer

    stops: list[Callable[[], None]] = []
    try:
        server = ControlServer(kernel, ops=control_ops)
        server.start()
        if tree is not None:
            tree.control_socket = server.path
        stops.append(server.close)
    except OSError as exc:
        log.warning("no control socket (fakesysfs monitor will not work): %s", exc)
    processor: Processor | None = None
    if rules:
        from .udev_rules import RulesRunner, UdevRules

        try:
            processor = RulesRunner(UdevRules.load(rules, report=report_unsupported), sysfs_root).process
        except RulesError as exc:
            log.error("udev rules not applied: %s", exc)
    sender: NetlinkSender | None = None
    if netlink:
        try:
            sender = NetlinkSender()
        except (OSError, NotPrivateNetns) as exc:
            log.warning("uevents are not broadcast to libudev listeners: %s", exc)
    if sender is not None or processor is not None:
        stops.append(NetlinkForwarder(kernel.events, sender or _NoSender(), processor).start().close)

    def stop() -> None:
        for fn in reversed(stops):
            try:
                fn()
            except Exception:  # best effort at exit
                log.exception("stopping event services")

    return stop


class _NoSender(NetlinkSender):
    """Rules without netlink (``fakesysfs run --share-net --rules``)."""

    def __init__(self) -> None:  # no socket
        self.sent = self.errors = 0

    def send(self, _properties: dict[str, str], _tags: Sequence[str] = ()) -> None:
        self.sent += 1

    def close(self) -> None:
        return None
