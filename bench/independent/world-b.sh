#!/usr/bin/env bash
# Independent check of issue 21, checks 5 and 7 (rootful podman 4.3 on netplumb-bridge): run as
#   unshare --mount --net --propagation private world-b.sh PLUGIN
set -uo pipefail
plugin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
exec 3<"$plugin"; exec 4<$here/client.py
for d in /run /var/lib/containers /var/lib/cni /dev/shm /tmp /var/tmp /etc/cni; do mkdir -p $d; mount -t tmpfs -o mode=0755 tmpfs $d; done
S=$(mktemp -d); mkdir -p $S/cni /etc/cni/net.d; cat <&3 >$S/cni/netplumb-bridge; chmod 755 $S/cni/netplumb-bridge; cat <&4 >$S/client.py; chmod 755 $S/client.py
had_cgroups=$(ls -d /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true)
cleanup() { timeout 60 podman rm -a -f -t 0 >/dev/null 2>&1
  [ -n "$had_cgroups" ] || for d in /sys/fs/cgroup/*/libpod_parent; do [ ! -d "$d" ] || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done; }
trap cleanup EXIT
cat >$S/containers.conf <<C
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$S/cni", "/usr/lib/cni"]
network_config_dir = "/etc/cni/net.d"
C
printf '[storage]\ndriver = "vfs"\ngraphroot = "/var/lib/containers/storage"\nrunroot = "/run/containers/storage"\n' >$S/storage.conf
export CONTAINERS_CONF=$S/containers.conf CONTAINERS_STORAGE_CONF=$S/storage.conf
conf() { # NAME BRIDGE SUBNET(3 octets) EXTRA-KEYS PORTMAPS(yes/portmap)
  local pm='"capabilities": {"portMappings": true},' tail=''
  [ "$5" = portmap ] && { pm=''; tail=', {"type": "portmap", "capabilities": {"portMappings": true}}'; }
  cat >/etc/cni/net.d/$1.conflist <<J
{"cniVersion": "1.0.0", "name": "$1", "plugins": [{
  "type": "netplumb-bridge", "bridge": "$2", "isGateway": true, "ipMasq": true, $4 $pm
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3.0/24", "gateway": "$3.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}
}$tail]}
J
}
conf npg npbr0 10.89.7 '"guard": true,' yes
conf nppm npbr1 10.89.8 '' portmap
conf npiso npbr2 10.89.9 '"guard": true, "isolate": true,' yes
conf npnog npbr3 10.89.10 '"guard": false,' yes
cat /etc/cni/net.d/npg.conflist
ip link set lo up
ip -j link show >$S/links.before; nft list ruleset >$S/nft.before; iptables-save 2>/dev/null | grep -v '^#' >$S/ipt.before
ip netns add out
ip link add up0 type veth peer name eth0 netns out
ip addr add 192.0.2.1/24 dev up0; ip link set up0 up
ip -n out addr add 192.0.2.2/24 dev eth0; ip -n out link set eth0 up
say() { echo; echo "### $*"; }
mkdir -p $S/rootfs/bin $S/rootfs/www/cgi-bin; cp /bin/busybox $S/rootfs/bin/
printf '#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho "$(cat /www/name) saw $REMOTE_ADDR"\n' >$S/rootfs/www/cgi-bin/peer
chmod 755 $S/rootfs/www/cgi-bin/peer; tar -C $S/rootfs -cf $S/rootfs.tar .
timeout 120 podman import -q $S/rootfs.tar localhost/indep-bb >/dev/null
prun() { timeout 120 podman run --ulimit host "$@"; }
web() { # NAME NETWORK [podman args]: a container serving /cgi-bin/peer on port 80
  local n=$1 net=$2; shift 2
  prun -d --name $n --network $net "$@" localhost/indep-bb /bin/busybox sh -c "echo $n >/www/name; exec /bin/busybox httpd -f -p 80 -h /www" >/dev/null; }
fetch() { ip netns exec ${NS:-out} timeout 5 busybox wget -q -O - "http://$1/cgi-bin/peer" 2>&1; }

say "5. rootful $(podman --version), -p on the plugin's portMappings (npg, guard: true) and on the reference portmap (nppm)"
echo "podman network ls: $(podman network ls --format '{{.Name}}' | tr '\n' ' ')"
for run in "npg 8081" "nppm 8082"; do set -- $run
  echo "\$ podman run -d --name web-$1 --network $1 -p $2:80 ... httpd"; web web-$1 $1 -p $2:80
  for _ in $(seq 30); do r=$(fetch 192.0.2.1:$2) && break; sleep 0.2; done
  echo "\$ ip netns exec out wget http://192.0.2.1:$2/cgi-bin/peer  ->  $r"
  echo "  container address: $(podman exec web-$1 /bin/busybox ip -4 -o addr show eth0 | awk '{print $4}')"
done
echo "--- rules in the world for the two (plugin: nft inet netplumb-cni published map; portmap: iptables):"
nft -j list map inet netplumb-cni published | jq -c '[.nftables[].map.elem // empty | .[]]'
echo "iptables CNI-HOSTPORT-DNAT/CNI-DN rules: $(iptables-save | grep -c 'CNI-DN')"
echo "\$ podman rm -f web-npg web-nppm"; timeout 60 podman rm -f -t 0 web-npg web-nppm >/dev/null
echo "after rm: fetch 8081 -> '$(fetch 192.0.2.1:8081 | head -1)'; fetch 8082 -> '$(fetch 192.0.2.1:8082 | head -1)'"
echo "after rm: bridge ports: npbr0 '$(ip -o link show master npbr0 | awk '{print $2}')' npbr1 '$(ip -o link show master npbr1 | awk '{print $2}')'"
echo "after rm: published map: $(nft -j list map inet netplumb-cni published | jq -c '[.nftables[].map.elem // empty | .[]]')"
echo "after rm: host-local leases: '$(find /var/lib/cni/networks -name '10.*' | tr '\n' ' ')'; /run/netns: '$(ls /run/netns 2>/dev/null | grep -v '^out$' | tr '\n' ' ')'"
echo "after rm: new links: $(ip -j link show | jq -r '.[].ifname' | sort > $S/l.a; jq -r '.[].ifname' $S/links.before | sort | comm -13 - $S/l.a | tr '\n' ' ')"
echo "after rm: nft tables: $(nft list tables | tr '\n' ';')"
echo "after rm: nft lines naming 10.89.7./10.89.8.: $(nft list ruleset | grep -cE '10\.89\.[78]\.[0-9]')  iptables-save lines naming them: $(iptables-save | grep -cE '10\.89\.[78]\.[0-9]')"
nft list ruleset | grep -E "10\.89\.[78]\.[0-9]"
iptables-save | grep -E '10\.89\.[78]\.[0-9]' | head -5

say "7a. guard: an attacker container forges the victim's MAC and IP (npg, guard: true) and the same on npnog (guard: false)"
for net in npg npnog; do
  gw=$(jq -r '.plugins[0].ipam.ranges[0][0].gateway' /etc/cni/net.d/$net.conflist)
  web victim-$net $net; web attacker-$net $net --cap-add NET_ADMIN,NET_RAW
  vip=$(podman exec victim-$net /bin/busybox ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
  vmac=$(podman exec victim-$net /bin/busybox cat /sys/class/net/eth0/address)
  amac=$(podman exec attacker-$net /bin/busybox cat /sys/class/net/eth0/address)
  NS= ; echo "[$net] victim $vip $vmac, attacker $amac; before: world fetches http://$vip -> $(ip netns exec out true; timeout 5 busybox wget -q -O - http://$vip/cgi-bin/peer)"
  echo "\$ podman exec attacker-$net sh -c 'ip link set eth0 down; ip link set eth0 address $vmac; ip link set eth0 up; ip addr add $vip/24 dev eth0; arping -U -c 3 -s $vip -I eth0 $vip; ping -c 3 -I $vip $gw'"
  podman exec attacker-$net /bin/busybox sh -c "ip link set eth0 down; ip link set eth0 address $vmac; ip link set eth0 up; ip addr add $vip/24 dev eth0 2>&1; ip route add default via $gw 2>/dev/null; sleep 1; arping -U -c 3 -s $vip -I eth0 $vip >/dev/null 2>&1; ping -c 3 -W 1 -I $vip $gw | grep loss" 2>&1
  echo "[$net] world's neighbour entry for $vip: $(ip neigh show $vip)"
  echo "[$net] bridge fdb for $vmac: $(bridge fdb show | grep -i "$vmac" | tr '\n' ';')"
  res=""; for i in 1 2 3 4 5 6; do res="$res|$(timeout 5 busybox wget -q -O - http://$vip/cgi-bin/peer 2>&1)"; sleep 0.3; done
  echo "[$net] after the forge, 6 fetches from the world of http://$vip/cgi-bin/peer: $res"
  r=$(fetch 192.0.2.1:1 2>/dev/null); timeout 60 podman rm -f -t 0 victim-$net attacker-$net >/dev/null
done

say "7b. isolate: two containers on npiso (guard: true, isolate: true)"
web iso1 npiso; web iso2 npiso --cap-add NET_ADMIN,NET_RAW
ip1=$(podman exec iso1 /bin/busybox ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
echo "iso1 $ip1; world fetches iso1 -> $(timeout 5 busybox wget -q -O - http://$ip1/cgi-bin/peer 2>&1)"
podman exec iso2 /bin/busybox sh -c "
echo \"iso2 -> gateway 10.89.9.1: \$(ping -c 2 -W 1 10.89.9.1 | grep loss)\"
echo \"iso2 -> iso1 $ip1 ping: \$(ping -c 2 -W 1 $ip1 | grep loss)\"
echo \"iso2 -> iso1 wget: \$(timeout 4 wget -q -O - http://$ip1/cgi-bin/peer 2>&1)\"
ip route add $ip1/32 via 10.89.9.1 && echo '\$ ip route add $ip1/32 via 10.89.9.1: ok'
echo \"iso2 -> iso1 ping via the gateway: \$(ping -c 2 -W 1 $ip1 | grep loss)\"
echo \"iso2 -> iso1 wget via the gateway: \$(timeout 4 wget -q -O - http://$ip1/cgi-bin/peer 2>&1)\"
" 2>&1
timeout 60 podman rm -f -t 0 iso1 iso2 >/dev/null
echo "after all rm: bridge ports: $(for b in npbr0 npbr1 npbr2 npbr3; do echo -n "$b:'$(ip -o link show master $b 2>/dev/null| awk '{print $2}')' "; done)"
echo "after all rm: nft lines naming 10.89.: $(nft list ruleset | grep -cE '10\.89\.[0-9]+\.[0-9]')  np ports: $(ip -o link | grep -c ': np')"
ip netns del out
