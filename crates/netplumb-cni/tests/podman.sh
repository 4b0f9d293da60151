#!/usr/bin/env bash
# Rootful podman (Debian 12's 4.3, CNI backend) on a conflist that uses
# netplumb-bridge: a container fetches a page from a server in the test's
# host namespace; with -p a client on another "machine" reaches a container
# that sees the client's address (on the plugin's portMappings, and on the
# reference portmap for comparison); `podman rm` leaves nothing behind.
#
# Run by tests/podman.rs as
#   unshare --mount --net --propagation private podman.sh PLUGIN
# so every change lands in this script's own network and mount namespaces:
# tmpfs on /run, /var/lib/containers, /var/lib/cni, /dev/shm, /tmp and
# /var/tmp (configuration, the image, the page). The namespaces die with the
# script; the trap removes containers first. Every wait is bounded.
set -euo pipefail

plugin=$1
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  { echo "podman.sh: refusing to run in the machine's network namespace" >&2; exit 1; }
# Opened before the tmpfs mounts below, which would hide it if it lives
# under one of them (a checkout or CARGO_TARGET_DIR under /tmp).
exec 3<"$plugin"

for dir in /run /var/lib/containers /var/lib/cni /dev/shm /tmp /var/tmp; do
  mkdir -p "$dir"
  mount -t tmpfs -o mode=0755 tmpfs "$dir"
done
# A working directory under /tmp (a checkout there) is hidden now: leave it
# (pyenv's python3 shim, for one, cannot start in it).
cd /
scratch=$(mktemp -d)

# With cgroupfs, podman makes libpod_parent (and libpod_parent/conmon) in
# every controller of the machine's cgroup tree; if this run made them, it
# removes them (rmdir: only empty ones).
had_cgroups=$(ls -d /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true)
cleanup() {
  timeout 60 podman rm -a -f -t 0 >/dev/null 2>&1 || true
  [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
  if [ -z "$had_cgroups" ]; then
    for dir in /sys/fs/cgroup/*/libpod_parent; do
      [ ! -d "$dir" ] || find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  fi
}
trap cleanup EXIT

net=nptest
bridge=npbr0
gateway=10.89.7.1

# The plugin, and host-local beside it, from where podman looks for plugins.
mkdir -p "$scratch/cni" "$scratch/net.d"
cat <&3 >"$scratch/cni/netplumb-bridge"
exec 3<&-
chmod 0755 "$scratch/cni/netplumb-bridge"
cat >"$scratch/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$scratch/cni", "/usr/lib/cni"]
network_config_dir = "$scratch/net.d"
EOF
cat >"$scratch/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "/var/lib/containers/storage"
runroot = "/run/containers/storage"
EOF
export CONTAINERS_CONF=$scratch/containers.conf
export CONTAINERS_STORAGE_CONF=$scratch/storage.conf

# podman 4.3 reads conflists of cniVersion up to 1.0.0.
cat >"$scratch/net.d/$net.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$net",
  "plugins": [{
    "type": "netplumb-bridge",
    "bridge": "$bridge",
    "isGateway": true,
    "ipMasq": true,
    "guard": true,
    "capabilities": {"portMappings": true},
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.7.0/24", "gateway": "$gateway"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
# For comparison: the reference portmap chained after the plugin, which
# then declares no portMappings of its own.
cat >"$scratch/net.d/nppm.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nppm",
  "plugins": [{
    "type": "netplumb-bridge",
    "bridge": "npbr1",
    "isGateway": true,
    "ipMasq": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.8.0/24", "gateway": "10.89.8.1"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }, {
    "type": "portmap",
    "capabilities": {"portMappings": true}
  }]
}
EOF

ip -j -d link show >"$scratch/links.before"
ip link set lo up

# podman loads the conflist only if the plugin's VERSION lists its version.
networks=$(timeout 60 podman network ls --format '{{.Name}}')
grep -qx "$net" <<<"$networks" || { echo "podman does not list network $net: $networks" >&2; exit 1; }

# An image from a busybox-static rootfs. (Its wget -T crashes with SIGSEGV
# in the container here: the outer timeout bounds the fetch instead.)
mkdir -p "$scratch/rootfs/bin" "$scratch/rootfs/www/cgi-bin"
cp /bin/busybox "$scratch/rootfs/bin/busybox"
# A page that says which address the client came from.
printf '#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho "$REMOTE_ADDR"\n' \
  >"$scratch/rootfs/www/cgi-bin/peer"
chmod 0755 "$scratch/rootfs/www/cgi-bin/peer"
tar -C "$scratch/rootfs" -cf "$scratch/rootfs.tar" .
timeout 120 podman import -q "$scratch/rootfs.tar" localhost/netplumb-busybox >/dev/null

# The page, served on the bridge's gateway address once the bridge exists:
# first a container that creates it, then the server, then the fetch.
mkdir -p "$scratch/www"
echo "hello from the host $$" >"$scratch/www/index.html"
timeout 120 podman run -d --name first --network "$net" --ulimit host \
  localhost/netplumb-busybox /bin/busybox sleep 120 >/dev/null
busybox httpd -f -p "$gateway:8080" -h "$scratch/www" &
server=$!
for _ in $(seq 50); do
  busybox wget -q -O /dev/null "http://$gateway:8080/index.html" 2>/dev/null && break
  sleep 0.1
done

page=$(timeout 120 podman run --rm --name second --network "$net" --ulimit host \
  localhost/netplumb-busybox /bin/busybox wget -q -O - "http://$gateway:8080/index.html")
[ "$page" = "hello from the host $$" ] || { echo "fetched: '$page'" >&2; exit 1; }
echo "podman: a container on $net fetched the page from the host"

# The first container's attachment as seen from the host.
# One port, named as netplumb-bridge names host ends.
ports=$(ip -j link show master "$bridge" | jq -r '.[].ifname')
[ "$(echo "$ports" | grep -c '^np[0-9a-f]\{13\}$')" = 1 ] || { echo "ports of $bridge: $ports" >&2; exit 1; }
ip -j addr show dev "$bridge" | jq -e --arg gw "$gateway" '.[0].addr_info | any(.local == $gw)' >/dev/null
inside=$(timeout 60 podman exec first /bin/busybox ip -o -4 addr show eth0)
echo "$inside" | grep -q 'inet 10\.89\.7\.' || { echo "inside: $inside" >&2; exit 1; }

timeout 60 podman rm -f -t 0 first >/dev/null

# Published ports, judged from another machine: a namespace joined to this
# one by a veth, which fetches the container's page through this host's
# address and reads the address the container saw. First on the plugin's
# own publishing (-p on $net), then on the reference portmap (nppm).
ip netns add npout
ip link add uplink0 type veth peer name eth0 netns npout
ip addr add 192.0.2.1/24 dev uplink0
ip link set uplink0 up
ip -n npout addr add 192.0.2.2/24 dev eth0
ip -n npout link set eth0 up
peer_seen() { # PORT TRIES: the client address the container behind PORT saw
  local seen=""
  for _ in $(seq "$2"); do
    seen=$(ip netns exec npout timeout 5 busybox wget -q -O - "http://192.0.2.1:$1/cgi-bin/peer" 2>/dev/null) && break
    sleep 0.2
  done
  # busybox httpd listens on IPv6 too: an IPv4 client reads as ::ffff:A.
  seen=${seen#"[::ffff:"}
  echo "${seen%"]"}"
}
for run in "$net 8081" "nppm 8082"; do
  set -- $run
  timeout 120 podman run -d --name "web-$1" --network "$1" -p "$2:80" --ulimit host \
    localhost/netplumb-busybox /bin/busybox httpd -f -p 80 -h /www >/dev/null
  seen=$(peer_seen "$2" 50)
  [ "$seen" = 192.0.2.2 ] || { echo "$1: the container saw '$seen', not 192.0.2.2" >&2; exit 1; }
  echo "podman: -p $2:80 on $1: a client on another machine reached the container, which saw 192.0.2.2"
  timeout 60 podman rm -f -t 0 "web-$1" >/dev/null
done
published=$(nft -j list map inet netplumb-cni published | jq '[.nftables[].map.elem // empty | .[]] | length')
[ "$published" = 0 ] || { echo "$published publications left" >&2; exit 1; }
[ -z "$(peer_seen 8081 1)" ] || { echo "8081 still answers after rm" >&2; exit 1; }
ip link del uplink0
ip netns del npout
# Nothing left: no port on the bridge, no lease, no namespace, the links
# are those from before plus the bridge.
[ -z "$(ip -j link show master "$bridge" | jq -r '.[].ifname')" ] ||
  { echo "ports left on $bridge" >&2; ip link show master "$bridge" >&2; exit 1; }
leases=$(find /var/lib/cni/networks/$net -name '10.*' 2>/dev/null | wc -l)
[ "$leases" = 0 ] || { echo "$leases leases left" >&2; exit 1; }
[ -z "$(ls /run/netns 2>/dev/null)" ] || { echo "namespaces left: $(ls /run/netns)" >&2; exit 1; }
ip -j -d link show >"$scratch/links.after"
jq -e -n --slurpfile b "$scratch/links.before" --slurpfile a "$scratch/links.after" --arg br "$bridge" \
  '[$a[0][] | .ifname] - [$b[0][] | .ifname] == [$br, "npbr1"]' >/dev/null ||
  { echo "links left: $(jq -c '[.[] | .ifname]' "$scratch/links.after")" >&2; exit 1; }
echo "podman: podman rm left nothing behind"
