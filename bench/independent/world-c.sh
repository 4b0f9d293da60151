#!/usr/bin/env bash
# Independent check of issue 21, check 6 (containerd 1.6, ctr run --cni on netplumb-bridge): run as
#   unshare --mount --net --propagation private world-c.sh PLUGIN
# containerd is started here, in this world, with a config under a temp dir (never its service).
set -uo pipefail
plugin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
exec 3<"$plugin"
cd /; for d in /run /etc/cni /var/lib/cni; do mkdir -p $d; mount -t tmpfs -o mode=0755 tmpfs $d; done
# ctr's --cni reads /etc/cni/net.d and /opt/cni/bin (which does not exist on this machine: put a tmpfs over /opt)
mount -t tmpfs -o mode=0755 tmpfs /opt; mkdir -p /opt/cni/bin /etc/cni/net.d
cat <&3 >/opt/cni/bin/netplumb-bridge; chmod 755 /opt/cni/bin/netplumb-bridge
ls /opt/cni/bin
S=$(mktemp -d /tmp/indep-ctrd.XXXX)
cat >/etc/cni/net.d/10-npc.conflist <<J
{"cniVersion": "1.0.0", "name": "npc", "plugins": [{
  "type": "netplumb-bridge", "bridge": "npbr5", "isGateway": true, "ipMasq": true, "guard": true,
  "capabilities": {"portMappings": true},
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.12.0/24", "gateway": "10.89.12.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}
}]}
J
cat >$S/config.toml <<T
version = 2
root = "$S/root"
state = "$S/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$S/containerd.sock"
[ttrpc]
  address = "$S/containerd.sock.ttrpc"
T
ip link set lo up
ip -j link show | jq -r '.[].ifname' | sort >$S/links.before
containerd --config $S/config.toml >$S/containerd.log 2>&1 & cd_pid=$!
c() { timeout 120 ctr -a $S/containerd.sock -n indep "$@"; }
had_cgroups=$(ls -d /sys/fs/cgroup/*/indep 2>/dev/null || true)
cleanup() { c task kill -s KILL c1 >/dev/null 2>&1; c task rm -f c1 >/dev/null 2>&1; c c rm c1 >/dev/null 2>&1; kill $cd_pid; wait $cd_pid; rm -rf $S
  # ctr's namespace "indep" makes /sys/fs/cgroup/*/indep: remove them (rmdir, empty only) if this run made them
  [ -n "$had_cgroups" ] || for d in /sys/fs/cgroup/*/indep; do [ ! -d "$d" ] || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done; }
trap cleanup EXIT
for _ in $(seq 100); do c version >/dev/null 2>&1 && break; sleep 0.1; done
echo "### 6. $(containerd --version) started in the world (pid $cd_pid), ctr: $(ctr --version)"
mkdir -p $S/img/rootfs/bin; cp /bin/busybox $S/img/rootfs/bin/; for a in sh nc ping sleep echo cat ip wget; do ln -s busybox $S/img/rootfs/bin/$a; done
tar -C $S/img/rootfs --numeric-owner --owner=0 --group=0 -cf $S/img/layer.tar bin
lsum=$(sha256sum $S/img/layer.tar | cut -d' ' -f1)
echo "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$lsum\"]}}" >$S/img/c.json
csum=$(sha256sum $S/img/c.json | cut -d' ' -f1); mv $S/img/c.json $S/img/$csum.json
echo "[{\"Config\":\"$csum.json\",\"RepoTags\":[\"indep:bb\"],\"Layers\":[\"layer.tar\"]}]" >$S/img/manifest.json
tar -C $S/img -cf $S/image.tar manifest.json $csum.json layer.tar
echo "\$ ctr image import --snapshotter native image.tar"; c image import --snapshotter native $S/image.tar
echo "\$ ctr run --cni ... c1 sleep 600 (detached)"
c run -d --cni --snapshotter native docker.io/library/indep:bb c1 sleep 600; echo "exit $?"
sleep 1
tpid=$(c task ls | awk '$1=="c1"{print $2}'); echo "task pid $tpid"
echo "container eth0: $(nsenter -t $tpid -n ip -4 -o addr show dev eth0 | awk '{print $4}'), route: $(nsenter -t $tpid -n ip -4 route | tr '\n' ';')"
echo "bridge npbr5 ports: $(ip -o link show master npbr5 | awk '{print $2}')"
/usr/bin/python3 $here/peer.py 7000 7001 & srv=$!; sleep 0.5
echo "\$ ctr task exec c1 sh -c 'ping -c2 10.89.12.1; echo | nc 10.89.12.1 7000'"
c task exec --exec-id e1 c1 sh -c 'ping -c2 -W1 10.89.12.1 | grep loss; echo | nc 10.89.12.1 7000'
kill $srv
echo "\$ ctr task kill -s KILL c1; ctr task rm c1; ctr container rm c1"
c task kill -s KILL c1; sleep 1; c task rm c1; c container rm c1; echo "exit $?"
sleep 1
echo "after removal: npbr5 ports '$(ip -o link show master npbr5 | awk '{print $2}')'; np links: $(ip -o link | grep -c ': np')"
echo "after removal: new links: $(ip -j link show | jq -r '.[].ifname' | sort | comm -13 $S/links.before - | tr '\n' ' ')"
echo "after removal: host-local leases: '$(find /var/lib/cni/networks -name '10.*' 2>/dev/null | tr '\n' ' ')'; /run/netns: '$(ls /run/netns 2>/dev/null | tr '\n' ' ')'"
echo "after removal: nft lines naming 10.89.12.x: $(nft list ruleset | grep -cE '10\.89\.12\.[0-9]')"; nft list ruleset | grep -E '10\.89\.12\.[0-9]'
echo "after removal: nft tables: $(nft list tables | tr '\n' ';')"

echo; echo "### 6b. ctr run --rm --cni (foreground: ctr calls the CNI DEL itself when the task exits)"
/usr/bin/python3 $here/peer.py 7000 7001 & srv=$!; sleep 0.5
echo "\$ ctr run --rm --cni ... c2 sh -c 'ip -4 -o addr show eth0; ping -c2 10.89.12.1; echo | nc 10.89.12.1 7000'"
c run --rm --cni --snapshotter native docker.io/library/indep:bb c2 sh -c 'ip -4 -o addr show eth0 | cut -c1-50; ping -c2 -W1 10.89.12.1 | grep loss; echo | nc 10.89.12.1 7000'; echo "exit $?"
kill $srv; sleep 1
echo "after c2: npbr5 ports '$(ip -o link show master npbr5 | awk '{print $2}')'; host-local leases: '$(find /var/lib/cni/networks -name '10.*' 2>/dev/null | tr '\n' ' ')'"
echo "after c2: nft lines naming 10.89.12.x: $(nft list ruleset | grep -cE '10\.89\.12\.[0-9]')"; nft list ruleset | grep -E '10\.89\.12\.[0-9]'
echo "ctr containers left: '$(c c ls -q | tr '\n' ' ')' tasks: '$(c task ls -q | tr '\n' ' ')'"
grep -iE 'level=(error|warn)' $S/containerd.log | grep -i cni | head -5
