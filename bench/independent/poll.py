#!/usr/bin/python3
# poll.py HOSTIF ADDR ADDR6 STATEDIR UID REAPERPID SIGNAL PID...
# Sends SIGNAL to each PID (t0), then polls in-process (no fork for the files
# and the interface; `nft list ruleset` at most every 20 ms), for at most 10 s,
# until each trace of the lease is gone: the host end (if_nametoindex), the
# lease record, the user's count, the ports record, the nft lines naming the
# lease / its IPv6 address / the host end, and the reaper (gone or zombie).
# Prints, in ms after t0, when each was first seen gone, and whether the lease
# was ever seen gone while the host end was still there (checked after it).
import os, re, signal, socket, subprocess, sys, time
h, a, a6, sd, uid, rpid, sig = sys.argv[1:8]
pids = [int(p) for p in sys.argv[8:]]
pat = re.compile(r"(%s|%s|%s)\b" % (re.escape(a), re.escape(a6), re.escape(h)))
def rd(p):
    try: return open(p, "rb").read().decode(errors="replace")
    except OSError: return ""
def host():
    try: socket.if_nametoindex(h); return True
    except OSError: return False
def lease(): return any(l.startswith(a + " ") for l in rd(sd + "/leases").replace("\0", "\n").split("\n"))
def users(): return rd(sd + "/users/" + uid).replace("\0", "").strip() not in ("", "0")
def ports(): return (a + " ") in rd(sd + "/ports").replace("\0", "\n")
def nftn(): return sum(1 for l in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout.splitlines() if pat.search(l))
def reaper():
    s = rd("/proc/%s/status" % rpid)
    return bool(s) and "\nState:\tZ" not in s
puid = os.environ.get("PUID")  # also: when no process of this uid is left (rootless Docker's stop)
def procs():
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = rd("/proc/%s/status" % d)
            m = re.search(r"\nUid:\t(\d+)", st)
            if m and m.group(1) == puid and "\nState:\tZ" not in st: return True
    return False
gone = {}; bad = []
sig = getattr(signal, "SIG" + sig)
t0 = time.monotonic()
for p in pids:
    try: os.kill(p, sig)
    except ProcessLookupError: pass
last_nft = -1
while True:
    t = (time.monotonic() - t0) * 1000
    if t > 10000: break
    l = lease(); hh = host()  # the lease first, then the host end
    if not l and hh and t not in bad: bad.append(round(t, 1))
    for k, f in (("lease record", lambda: l), ("host end", lambda: hh), ("users count", users), ("ports record", ports), ("reaper", reaper)):
        if k not in gone and not f(): gone[k] = t
    if "nft lines" not in gone and t - last_nft >= 20:
        last_nft = t
        if nftn() == 0: gone["nft lines"] = (time.monotonic() - t0) * 1000
    if puid and "processes of the user" not in gone and not procs(): gone["processes of the user"] = (time.monotonic() - t0) * 1000
    if len(gone) == (7 if puid else 6): break
    time.sleep(0.002)
order = (["processes of the user"] if puid else []) + ["host end", "lease record", "users count", "ports record", "nft lines", "reaper"]
print("  gone after (ms from the signal; files and interface polled every 2 ms, nft every 20 ms, up to 10 s): " +
      "; ".join("%s %s" % (k, ("%.0f" % gone[k]) if k in gone else "NOT GONE") for k in order))
print("  lease seen gone while the host end was still there: %s" % (bad[:5] if bad else "never"))
