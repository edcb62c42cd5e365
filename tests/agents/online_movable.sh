#!/bin/sh
# An agent in another language than the test: it onlines every memory block that appears
# (a hot-plugged CXL device bound to kmem) as movable, as a tiering daemon would.
#
#   online_movable.sh SYSFS_ROOT
#
# It learns about new blocks from the mount's uevents (`fakesysfs monitor`, the same lines as
# `udevadm monitor --kernel`) and prints "ready" once it listens, so a test can start the
# hardware change without racing it. FAKESYSFS names the fakesysfs command (default:
# fakesysfs). It ends when the mount goes away or on SIGTERM.
set -eu
root=$1
fakesysfs=${FAKESYSFS:-fakesysfs}

$fakesysfs monitor "$root" --subsystem-match memory | while read -r source action devpath subsystem; do
    case $source in
        monitor) echo ready ;;  # the header: the subscription is live
        KERNEL*)
            [ "$action" = add ] || continue
            if ! echo online_movable 2>/dev/null > "$root$devpath/state"; then
                echo "agent: could not online ${devpath##*/}" >&2
            fi
            ;;
    esac
done
