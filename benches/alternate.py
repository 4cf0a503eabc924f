#!/usr/bin/env python3
"""Times commands in alternation, for a machine that others share.

    benches/alternate.py RUNS NAME=COMMAND...

Runs every command once per round, in an order that rotates each round, so a
burst of load from another process falls on all of them alike (hyperfine
runs all of one command's runs, then the next's). Output goes to /dev/null.
Prints, per command: median and min wall time, peak RSS (largest over the
runs, from wait4), and the median of the per-round ratios to the LAST command
(the reference). A warm-up round comes first and is not counted.
"""

import os
import shlex
import statistics
import subprocess
import sys
import time


def run(cmd):
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen(shlex.split(cmd), stdout=null, stderr=null)
        _, status, usage = os.wait4(p.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main():
    runs = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    for _, cmd in cmds:
        run(cmd)  # warm-up: page cache, CPU frequency
    times = {n: [] for n, _ in cmds}
    rss = {n: 0 for n, _ in cmds}
    for r in range(runs):
        order = cmds[r % len(cmds):] + cmds[: r % len(cmds)]
        for name, cmd in order:
            t, m, code = run(cmd)
            if code not in (0, 1):
                sys.exit(f"{name}: exit {code}")
            times[name].append(t)
            rss[name] = max(rss[name], m)
    ref = cmds[-1][0]
    print(f"{'command':<16} {'median':>8} {'min':>8} {'peak RSS':>10}  ratio to {ref} (median of rounds)")
    for name, _ in cmds:
        ratios = [a / b for a, b in zip(times[name], times[ref])]
        print(
            f"{name:<16} {statistics.median(times[name]):7.2f}s {min(times[name]):7.2f}s "
            f"{rss[name] / 1024:8.0f} MiB  {statistics.median(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
