#!/bin/sh
# The agent test of test_agent.py, in shell: mount the default topology, start the agent,
# hot-add a CXL region, wait for the agent's stores, check the blocks and the store log.
#
#   sh examples/agent_test.sh        (as root, with fakesysfs on PATH)
set -eu
agent="python3 $(dirname "$0")/agent.py"
mnt=$(mktemp -d)
fakesysfs mount "$mnt" > /dev/null
log=$(mktemp)
$agent "$mnt" > "$log" &
agent_pid=$!
trap 'kill $agent_pid 2>/dev/null || true; fakesysfs umount "$mnt"; rmdir "$mnt"; rm -f "$log" "$log.before"' EXIT
until grep -qx ready "$log"; do sleep 0.1; done        # the agent took stock of the blocks

memory=$mnt/devices/system/memory
ls "$memory" | grep -x 'memory[0-9]*' | sort > "$log.before"
fakesysfs ctl "$mnt" add-cxl-region 2G 1                # prints "region3 dax3.0"
new=$(ls "$memory" | grep -x 'memory[0-9]*' | sort | comm -13 "$log.before" -)
[ "$(echo "$new" | wc -l)" -eq 16 ] || { echo "expected 16 new blocks, got: $new"; exit 1; }
last=$(echo "$new" | sort -V | tail -1)
fakesysfs ctl "$mnt" wait-event --timeout 30 ACTION=online DEVPATH=/devices/system/memory/$last > /dev/null
for block in $new; do
    [ "$(cat "$memory/$block/state")" = online ] && [ "$(cat "$memory/$block/valid_zones")" = Movable ] ||
        { echo "$block is not online movable"; exit 1; }
done
stores=$(fakesysfs ctl "$mnt" trace | grep -c '"data": "online_movable", "errno": 0')
[ "$stores" -eq 16 ] || { echo "expected 16 stores of online_movable, got $stores"; exit 1; }
echo "the agent onlined all 16 blocks as movable"
