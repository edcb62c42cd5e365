#!/usr/bin/env python3
"""An example agent: it onlines, as movable, every memory block that appears after it starts
(a hot-plugged CXL region bound to kmem), as a tiering daemon would.

    python3 agent.py SYSFS_ROOT

It knows nothing of fakesysfs: it polls SYSFS_ROOT/devices/system/memory as it would poll
/sys on a real host. It prints "ready" once it has taken stock of the blocks already there
(those it leaves alone), so a test can start the hardware change without racing it, and
ends when the tree goes away (the mount is unmounted) or on SIGTERM.
"""

import os
import sys
import time


def blocks(memory: str) -> set[str]:
    """The memoryN directories there are now."""
    return {name for name in os.listdir(memory) if name.startswith("memory") and name[6:].isdigit()}


def main() -> int:
    memory = os.path.join(sys.argv[1], "devices", "system", "memory")
    seen = blocks(memory)
    print("ready", flush=True)
    while os.path.isdir(memory):
        try:
            now = blocks(memory)
        except OSError:
            break  # the mount went away
        for name in sorted(now - seen, key=lambda n: int(n[6:])):
            try:
                with open(os.path.join(memory, name, "state"), "w") as state:
                    state.write("online_movable")
            except OSError as exc:
                print(f"agent: could not online {name}: {exc.strerror}", file=sys.stderr, flush=True)
        seen = now
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
