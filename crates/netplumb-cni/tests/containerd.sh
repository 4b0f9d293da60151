#!/usr/bin/env bash
# containerd 1.6 (Debian 12's, never its service) on netplumb-bridge:
# `ctr run --cni` gives a container an address from the plugin; it pings
# the gateway and connects to a server on another "machine"; the task's
# end leaves nothing of the plugin's; on a `guard: true` network a
# container forging another's MAC and address does not reach the host or
# take the victim's MAC (a `guard: false` twin shows the attack works);
# on `isolate: true` two containers do not reach each other (its twin:
# they do); containerd's CRI plugin, configured for the plugin, parses
# every conflist written.
#
# Run by tests/containerd.rs as
#   unshare --mount --net --propagation private containerd.sh PLUGIN
# so every change lands in this script's own network and mount namespaces:
# tmpfs on /run, /tmp, /var/lib/cni and /etc/cni/net.d, the plugin
# directory (ctr 1.6 as Debian builds it reads the first conflist of
# /etc/cni/net.d and plugins from /usr/lib/cni) bind-mounted over
# /usr/lib/cni. containerd's root, state and socket are in a temporary
# directory. The trap kills the tasks, stops containerd and its shims and
# removes the cgroups the run made. Every wait is bounded.
set -euo pipefail

plugin=$1
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  { echo "containerd.sh: refusing to run in the machine's network namespace" >&2; exit 1; }
[ -x /usr/lib/cni/host-local ] ||
  { echo "containerd.sh: /usr/lib/cni/host-local is missing: install containernetworking-plugins" >&2; exit 1; }
# Opened before the tmpfs mounts below, which would hide it if it lives
# under one of them (a checkout or CARGO_TARGET_DIR under /tmp).
exec 3<"$plugin"
# host-local and loopback (the CRI's), from under the plugin directory
# that the bind mount hides.
exec 4</usr/lib/cni/host-local 5</usr/lib/cni/loopback

for dir in /run /tmp /var/lib/cni /etc/cni/net.d; do
  mkdir -p "$dir"
  mount -t tmpfs -o mode=0755 tmpfs "$dir"
done
# A working directory under /tmp (a checkout there) is hidden now: leave it
# (pyenv's python3 shim, for one, cannot start in it).
cd /
scratch=$(mktemp -d)
mkdir -p "$scratch/cni"
cat <&3 >"$scratch/cni/netplumb-bridge"
cat <&4 >"$scratch/cni/host-local"
cat <&5 >"$scratch/cni/loopback"
exec 3<&- 4<&- 5<&-
chmod 0755 "$scratch/cni/"*
mount --bind "$scratch/cni" /usr/lib/cni

ns=netplumb-$$
sock=$scratch/containerd.sock
ctr() { timeout 60 /usr/bin/ctr -a "$sock" -n "$ns" "$@"; }
ours=$(readlink /proc/self/ns/net)
# Every process in this network namespace but this shell (and the subshell
# asking): the daemon, its shims, the tasks' ctr clients, servers. All
# started here. (find and cut have ended when their pids are looked at.)
strays() {
  local p
  for p in $(find /proc/[0-9]*/ns/net -maxdepth 0 -lname "net:?${ours//[^0-9]/}?" 2>/dev/null | cut -d/ -f3); do
    [ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && [ -e "/proc/$p" ] && echo "$p"
  done
  return 0
}
cleanup() {
  local id p
  # Runs to its end (bounded) even when stopped while it runs.
  trap '' INT TERM
  if [ -S "$sock" ]; then
    for id in $(ctr task ls -q 2>/dev/null); do ctr task kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr task ls -q 2>/dev/null); do ctr task rm -f "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr container ls -q 2>/dev/null); do ctr container rm "$id" >/dev/null 2>&1 || true; done
  fi
  # The other machine's server lives in a namespace of its own.
  [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
  for p in $(strays); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd ] && kill -TERM "$p" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    [ -z "$(strays)" ] && break
    sleep 0.1
  done
  for p in $(strays); do kill -KILL "$p" 2>/dev/null || true; done
  # runc's cgroups of this run (cgroup v1 or v2): /<namespace>/<id>. A
  # task that outlived its shim (each in a network namespace of its own)
  # is found there.
  local cgroups=(/sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns") procs
  for dir in "${cgroups[@]}"; do
    for procs in "$dir"/*/cgroup.procs; do
      [ ! -f "$procs" ] || for p in $(cat "$procs"); do kill -KILL "$p" 2>/dev/null || true; done
    done
  done
  for _ in $(seq 20); do
    local left=0
    for dir in "${cgroups[@]}"; do
      [ ! -d "$dir" ] || find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ ! -d "$dir" ] || left=1
    done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "containerd.sh: $*" >&2; exit 1; }
# A result, with the seconds since the start.
say() { echo "containerd: $* [${SECONDS}s]"; }
# Waits up to $1 tenths of a second for the command after it to succeed.
wait_for() {
  local tries=$1
  shift
  for _ in $(seq "$tries"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
ip link set lo up

# containerd's own configuration: everything under $scratch, the CRI's CNI
# pointed at the plugin directory (its conf_dir, /etc/cni/net.d, is this
# world's already; ctr itself reads neither key).
containerd config default |
  sed -e "s|^root = .*|root = \"$scratch/root\"|" \
      -e "s|^state = .*|state = \"$scratch/state\"|" \
      -e "s|\"/run/containerd/containerd.sock\"|\"$sock\"|" \
      -e "s|bin_dir = .*|bin_dir = \"/usr/lib/cni\"|" \
      -e "s|\"/opt/containerd\"|\"$scratch/opt\"|" >"$scratch/config.toml"
grep -q "^root = \"$scratch/root\"" "$scratch/config.toml" &&
  grep -q "address = \"$sock\"" "$scratch/config.toml" &&
  grep -q "path = \"$scratch/opt\"" "$scratch/config.toml" ||
  fail "the default configuration did not take root, socket and opt path"
# overlayfs where the kernel has it (upper on this tmpfs), else native;
# ctr's image import and run read it from the environment.
CONTAINERD_SNAPSHOTTER=native
grep -qw overlay /proc/filesystems && CONTAINERD_SNAPSHOTTER=overlayfs
export CONTAINERD_SNAPSHOTTER
containerd --config "$scratch/config.toml" >"$scratch/containerd.log" 2>&1 &
wait_for 300 ctr version >/dev/null 2>&1 || { cat "$scratch/containerd.log" >&2; fail "containerd did not answer within 30 s"; }

# An image without a registry: an OCI layout of /bin/busybox.
python3 - "$scratch/image" <<'EOF'
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as tar:
    top = tarfile.TarInfo("bin"); top.type = tarfile.DIRTYPE; top.mode = 0o755
    tar.addfile(top)
    tar.add("/bin/busybox", arcname="bin/busybox")
    link = tarfile.TarInfo("bin/sh"); link.type = tarfile.SYMTYPE; link.linkname = "busybox"
    tar.addfile(link)
layer_digest, layer_size = blob(layer.getvalue())
config = {"architecture": "amd64", "os": "linux",
          "config": {"Cmd": ["/bin/busybox", "sleep", "300"], "Env": ["PATH=/bin"]},
          "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
config_digest, config_size = blob(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer_size}]}
manifest_digest, manifest_size = blob(json.dumps(manifest).encode())
index = {"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": manifest_digest, "size": manifest_size,
    "platform": {"architecture": "amd64", "os": "linux"},
    "annotations": {"io.containerd.image.name": "localhost/netplumb-busybox:1",
                    "org.opencontainers.image.ref.name": "1"}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
tar -C "$scratch/image" -cf "$scratch/image.tar" .
ctr images import "$scratch/image.tar" >/dev/null
image=localhost/netplumb-busybox:1
ctr images ls -q | grep -qx "$image" || fail "the imported image is not listed: $(ctr images ls -q)"

# A network: the first (only) conflist of /etc/cni/net.d, which each
# `ctr run --cni` reads when it starts (and keeps for its DEL). Renamed
# into place: the CRI plugin reloads the directory on every change.
# network NAME BRIDGE SUBNET-PREFIX (e.g. 10.91.1) KEYS (JSON members)
network() {
  cat >/etc/cni/net.d/netplumb.new <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$1",
  "plugins": [{
    "type": "netplumb-bridge",
    "bridge": "$2",
    "isGateway": true,
    "ipMasq": true,
    $4,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3.0/24", "gateway": "$3.1"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
  mv -f /etc/cni/net.d/netplumb.new /etc/cni/net.d/10-netplumb.conflist
}
# Starts container ID (`ctr run --rm --cni`, which waits for its task and
# so calls the plugin's DEL when it ends) and waits until it has its
# address; sets $pid to its task's pid.
declare -A runs
start() {
  local id=$1
  pid=
  timeout 120 /usr/bin/ctr -a "$sock" -n "$ns" run --rm --cni --null-io \
    "$image" "$id" /bin/busybox sleep 300 </dev/null >"$scratch/run-$id.log" 2>&1 &
  runs[$id]=$!
  # Done when the task has an address, or its `ctr run` ended (failed).
  settled() {
    kill -0 "${runs[$1]}" 2>/dev/null || return 0
    pid=$(ctr task ls | awk -v id="$1" '$1 == id && $3 == "RUNNING" { print $2 }')
    [ -n "$pid" ] && nsenter -t "$pid" -n ip -4 -o addr show dev eth0 2>/dev/null | grep -q inet
  }
  wait_for 300 settled "$id" && kill -0 "${runs[$id]}" 2>/dev/null ||
    { cat "$scratch/run-$id.log" >&2; fail "$id got no address within 30 s"; }
}
# Kills container ID's task and waits for its `ctr run` to remove it.
stop() {
  ctr task kill -s KILL "$1" >/dev/null
  local pid=${runs[$1]}
  gone() { ! kill -0 "$pid" 2>/dev/null; }
  wait_for 300 gone || fail "ctr run of $1 did not end within 30 s"
  wait "$pid" || true
  ! ctr container ls -q | grep -qx "$1" || fail "container $1 is still there"
  # ctr logs a failed DEL ("network review") and carries on.
  ! grep -q 'network review' "$scratch/run-$1.log" || fail "ctr's DEL of $1 failed: $(cat "$scratch/run-$1.log")"
}
# In the container: ctr task exec ID COMMAND...
in_task() {
  ctr task exec --exec-id "x$RANDOM" "$@"
}
address_of() { nsenter -t "$1" -n ip -j -4 addr show dev eth0 | jq -r '.[0].addr_info[0].local'; }
mac_of() { nsenter -t "$1" -n ip -j link show dev eth0 | jq -r '.[0].address'; }
# The guarded host ends: the elements of the set `ports_v3` of the plugin's
# bridge guard table `netplumb-cni_guard` (one per guarded host end, printed
# as its name while it lives; the table, its chains and sets stay).
guard_ports() {
  nft -j list set bridge netplumb-cni_guard ports_v3 2>/dev/null |
    jq -r '.nftables[].set.elem // empty | .[] | tostring'
}
host_ends() { ip -j link show master "$1" | jq -r '.[].ifname'; }

ip -j link show >"$scratch/links.before"

# --- 1. A container reaches the host side, and leaves nothing ------------
network npc-basic npcb0 10.91.1 '"guard": true'
# Another machine, joined to this host by a veth, with a server that
# answers each connection with the address it saw.
ip netns add npc-out
ip link add uplink0 type veth peer name eth0 netns npc-out
ip addr add 192.0.2.1/24 dev uplink0
ip link set uplink0 up
ip -n npc-out addr add 192.0.2.2/24 dev eth0
ip -n npc-out link set eth0 up
ip netns exec npc-out timeout 60 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 7000)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall((a[0] + "\n").encode()); c.close()
' &
server=$!
listening() { ip netns exec npc-out ss -Hnlt 'sport = :7000' | grep -q .; }
wait_for 50 listening || fail "the server on the other machine did not listen"

start basic
address=$(address_of "$pid")
case $address in 10.91.1.*) ;; *) fail "basic got $address, not an address of 10.91.1.0/24" ;; esac
[ "$(host_ends npcb0 | grep -c '^np[0-9a-f]\{13\}$')" = 1 ] || fail "ports of npcb0: $(host_ends npcb0)"
in_task basic /bin/busybox ping -c 1 -W 2 10.91.1.1 >/dev/null || fail "basic does not reach its gateway"
seen=$(in_task basic /bin/busybox timeout 10 /bin/busybox nc 192.0.2.2 7000 </dev/null) ||
  fail "basic could not connect to the other machine"
[ "$seen" = 192.0.2.1 ] || fail "the other machine saw '$seen', not the masqueraded 192.0.2.1"
say "ctr run --cni gave basic $address; it pinged 10.91.1.1 and reached 192.0.2.2:7000 (seen as $seen)"
guarded=$(host_ends npcb0)
guard_ports | grep -qx "$guarded" || fail "$guarded is not a guarded port: $(guard_ports)"
stop basic
[ -z "$(host_ends npcb0)" ] || fail "ports left on npcb0: $(host_ends npcb0)"
[ -z "$(guard_ports)" ] || fail "guarded ports left: $(guard_ports)"
# The map exists once a port was published on this host.
published=$({ nft -j list map inet netplumb-cni published 2>/dev/null || echo '{"nftables": []}'; } |
  jq '[.nftables[].map.elem // empty | .[]] | length')
[ "$published" = 0 ] || fail "$published publications left"
leases=$(find /var/lib/cni/networks/npc-basic -name '10.*' | wc -l)
[ "$leases" = 0 ] || fail "$leases leases left in /var/lib/cni/networks/npc-basic"
say "the end of basic's task left no host end, guarded port, publication or lease"

# --- 2. The guard against a forged MAC and address, and its twin ---------
# UDP to the gateway from the attacker's eth0, raw: the victim's MAC and
# address; the attacker's MAC with the victim's address; an honest one.
forge() { # ATTACKER-PID SRC-MAC DST-MAC SRC-IP DST-IP
  nsenter -t "$1" -n timeout 10 python3 -c "
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
udp = struct.pack('!HHHH', 4444, 5555, 14, 0) + b'forged'
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton('$4'), socket.inet_aton('$5'))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
for _ in range(3): s.send(bytes.fromhex('${3//:/}') + bytes.fromhex('${2//:/}') + b'\x08\x00' + ip + udp)
"
}
for guard in true false; do
  net=npc-g$guard bridge=npcg${guard:0:1}0 prefix=10.91.2
  [ "$guard" = true ] || prefix=10.91.3
  network "$net" "$bridge" "$prefix" "\"guard\": $guard"
  start "attacker-$guard"
  attacker=$pid
  start "victim-$guard"
  victim=$pid
  a_mac=$(mac_of "$attacker") v_mac=$(mac_of "$victim")
  a_ip=$(address_of "$attacker") v_ip=$(address_of "$victim")
  v_end=$(ip -j link show master "$bridge" | jq -r --arg a "$(nsenter -t "$victim" -n ip -j link show dev eth0 | jq -r '.[0].link_index')" '.[] | select((.ifindex | tostring) == $a) | .ifname')
  gw_mac=$(ip -j link show dev "$bridge" | jq -r '.[0].address')
  timeout 8 python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('$prefix.1', 5555)); s.settimeout(0.2)
end = time.time() + 3
while time.time() < end:
    try:
        d, a = s.recvfrom(2000); print(a[0], flush=True)
    except socket.timeout:
        pass
" >"$scratch/sources-$guard" &
  receiver=$!
  bound() { ss -Hnlu 'sport = :5555' | grep -q .; }
  wait_for 50 bound || fail "the UDP receiver did not bind"
  forge "$attacker" "$v_mac" "$gw_mac" "$v_ip" "$prefix.1"
  forge "$attacker" "$a_mac" "$gw_mac" "$v_ip" "$prefix.1"
  forge "$attacker" "$a_mac" "$gw_mac" "$a_ip" "$prefix.1"
  wait "$receiver" || true
  sources=$(sort -u "$scratch/sources-$guard" | tr '\n' ' ')
  grep -qx "$a_ip" "$scratch/sources-$guard" || fail "guard=$guard: the honest datagram did not arrive ($sources)"
  fdb=$(bridge -j fdb show br "$bridge" | jq -r --arg m "$v_mac" '[.[] | select(.mac == $m and .ifname != null) | .ifname] | first // ""')
  if [ "$guard" = true ]; then
    ! grep -qx "$v_ip" "$scratch/sources-$guard" || fail "guard=true: the host received the victim's address ($sources)"
    [ "$fdb" = "$v_end" ] || fail "guard=true: the bridge sends the victim's MAC to '$fdb', not $v_end"
    say "guard=true: forged frames did not reach the host (it got from $sources) and $v_mac stays on the victim's port"
  else
    grep -qx "$v_ip" "$scratch/sources-$guard" || fail "guard=false: the forged address did not arrive ($sources): the attack proves nothing"
    [ "$fdb" != "$v_end" ] || fail "guard=false: the victim's MAC was not taken: the attack proves nothing"
    say "guard=false: the same attack reached the host ($sources) and moved $v_mac to $fdb"
  fi
  stop "attacker-$guard"
  stop "victim-$guard"
  [ -z "$(host_ends "$bridge")" ] || fail "ports left on $bridge"
done

# --- 3. Isolation, and its twin --------------------------------------------
for isolate in true false; do
  net=npc-i$isolate bridge=npci${isolate:0:1}0 prefix=10.91.4
  [ "$isolate" = true ] || prefix=10.91.5
  network "$net" "$bridge" "$prefix" "\"isolate\": $isolate"
  start "one-$isolate"
  start "two-$isolate"
  two=$pid
  in_task "one-$isolate" /bin/busybox ping -c 1 -W 2 "$prefix.1" >/dev/null || fail "isolate=$isolate: no gateway"
  reached=false
  in_task "one-$isolate" /bin/busybox ping -c 2 -W 1 "$(address_of "$two")" >/dev/null 2>&1 && reached=true
  [ "$reached" = "$([ "$isolate" = true ] && echo false || echo true)" ] ||
    fail "isolate=$isolate: one reached two: $reached"
  say "isolate=$isolate: one reaches the gateway; one reaches two: $reached"
  stop "one-$isolate"
  stop "two-$isolate"
done

# Nothing left: no port on any bridge, no lease, no guard table; the
# links are those from before plus the bridges and the uplink.
for bridge in npcb0 npcgt0 npcgf0 npcit0 npcif0; do
  [ -z "$(host_ends "$bridge")" ] || fail "ports left on $bridge"
done
leases=$(find /var/lib/cni/networks -name '10.*' | wc -l)
[ "$leases" = 0 ] || fail "$leases leases left"
# Of the plugin's nftables objects only its table stays, with the
# per-network masquerade chains (kept by design when containers leave),
# and its guard table, with no guarded port left in it.
tables=$(nft -j list tables | jq -r '[.nftables[].table // empty | "\(.family) \(.name)"] | sort | join(",")')
[ "$tables" = "bridge netplumb-cni_guard,inet netplumb-cni" ] || fail "nftables tables left: $tables"
[ -z "$(guard_ports)" ] || fail "guarded ports left: $(guard_ports)"
ip -j link show >"$scratch/links.after"
jq -e -n --slurpfile b "$scratch/links.before" --slurpfile a "$scratch/links.after" \
  '([$a[0][] | .ifname] - [$b[0][] | .ifname] | sort) == (["npcb0", "npcgt0", "npcgf0", "npcit0", "npcif0", "uplink0"] | sort)' >/dev/null ||
  fail "links left: $(jq -c '[.[] | .ifname]' "$scratch/links.after")"
say "every task's end left nothing behind"
# The CRI plugin (not used by ctr) parsed every conflist written here.
! grep 'failed to load CNI config list file' "$scratch/containerd.log" >&2 ||
  fail "containerd's CRI plugin could not load a conflist"
say "containerd's CRI plugin parsed each conflist"
