#!/usr/bin/env python3
# Samples /proc/PID/fd of a process every few ms, classifies each descriptor, and
# prints a histogram of counts and the composition of the largest samples.
import os, sys, time, collections, re
pid = sys.argv[1]; duration = float(sys.argv[2]); out = sys.argv[3]
hist = collections.Counter(); worst = []
def sockets():
    m = {}
    for f in ("tcp", "tcp6"):
        try:
            for line in open(f"/proc/{pid}/net/{f}").read().splitlines()[1:]:
                p = line.split()
                m[p[9]] = f"{f} {p[1]}->{p[2]} st{p[3]}"
        except OSError: pass
    return m
end = time.time() + duration
n = 0
while time.time() < end:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        break
    kinds = collections.Counter(); raw = []
    for fd in fds:
        try: target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError: continue
        k = re.sub(r"\[\d+\]", "", target)
        raw.append((int(fd), target)); kinds[k] += 1
    total = len(raw); hist[total] += 1; n += 1
    if total >= 16:
        socks = sockets()
        desc = [f"{fd}:{t}" + (" " + socks.get(re.sub(r"\D", "", t), "") if t.startswith("socket") else "") for fd, t in sorted(raw)]
        worst.append((total, time.time(), dict(kinds), desc))
    time.sleep(0.005)
with open(out, "w") as f:
    f.write(f"samples {n}\nhistogram {sorted(hist.items())}\n")
    for total, at, kinds, desc in sorted(worst, key=lambda w: -w[0])[:8]:
        f.write(f"\n{total} at {at:.3f}: {kinds}\n  " + "\n  ".join(desc) + "\n")
