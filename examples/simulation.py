import re
import subprocess
import sys
from pathlib import Path

from fakesysfs import Simulation

AGENT = Path(__file__).with_name("agent.py")        # the example agent: onlines new blocks as movable

with Simulation() as sim:                           # the default topology; or a file, TOML text, a BootConfig
    root = sim.mount()                              # a temporary mountpoint; unmounted on exit
    with subprocess.Popen([sys.executable, AGENT, root], stdout=subprocess.PIPE, text=True) as agent:
        assert agent.stdout is not None and agent.stdout.readline() == "ready\n"   # it took stock of the blocks
        region = sim.add_cxl_region("4G", node=1)   # firmware hot-adds a CXL RAM region: 32 blocks
        assert len(sim.blocks_of(region)) == 32
        sim.wait_until(lambda s: all(b.online for b in s.blocks_of(region)), timeout=10)
        agent.terminate()
    assert all(b.movable for b in sim.blocks_of(region))
    assert [w.text for w in sim.stores(path=re.compile(r".*/memory\d+/state"))] == ["online_movable"] * 32
print("the agent onlined all 32 blocks as movable")
