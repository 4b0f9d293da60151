#!/usr/bin/env bash
# Independent check of issue 19 (checks 1-3): run as
#   unshare --mount --net --propagation private world-a.sh BIN_COPY
# Everything happens in this private world: tmpfs on /run and /etc/netsetgo.
set -uo pipefail
bin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
for d in /run /etc/netsetgo; do mount -t tmpfs -o mode=0755 tmpfs $d; done
U=nsg-indep; uid=$(id -u $U); gid=$(id -g $U)
cat >/etc/netsetgo/netsetgo.conf <<P
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes
allow $U default 4
publish $U default tcp 8080
publish $U default udp 8053
P
chmod 644 /etc/netsetgo/netsetgo.conf
ip link set lo up
ip netns add out
ip link add up0 type veth peer name eth0 netns out
ip addr add 192.0.2.1/24 dev up0; ip addr add 2001:db8:2::1/64 dev up0 nodad; ip link set up0 up
ip -n out addr add 192.0.2.2/24 dev eth0; ip -n out addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n out link set eth0 up; ip -n out link set lo up
rt=/run/user/$uid; mkdir -p $rt; chown $U: $rt; chmod 700 $rt
asuser() { setpriv --reuid $uid --regid $gid --init-groups env -i HOME=/home/$U XDG_RUNTIME_DIR=$rt PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
say() { echo; echo "### $*"; }

say "1. rootlesskit 1.1.0 --net=lxc-user-nic with the installed copy"
echo "\$ rootlesskit --version: $(rootlesskit --version)"
asuser rootlesskit --net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 \
  --state-dir=$rt/rk /usr/bin/python3 $here/peer.py 8080 8053 >/run/rk.log 2>&1 &
rk=$!
for _ in $(seq 100); do [ -s $rt/rk/child_pid ] && break; sleep 0.1; done
child=$(cat $rt/rk/child_pid); echo "rootlesskit pid $rk, child_pid $child"
for _ in $(seq 50); do nsenter -t $child -n ip -6 addr show dev eth0 scope global | grep -q inet6 && \
  nsenter -t $child -n ip -4 addr show dev eth0 | grep -q inet && break; sleep 0.1; done
sleep 2  # let DAD finish
echo '$ nsenter -t CHILD -n ip -j addr show dev eth0 | jq (family, local, prefixlen, scope, flags)'
nsenter -t $child -n ip -j addr show dev eth0 | jq -c '.[0].addr_info[] | {family,local,prefixlen,scope,dynamic,tentative}'
echo '$ nsenter -t CHILD -n ip -j -4 route; ip -j -6 route'
nsenter -t $child -n ip -j -4 route | jq -c '.[]|{dst,gateway,dev,protocol}'
nsenter -t $child -n ip -j -6 route | jq -c '.[]|{dst,gateway,dev,protocol}'
echo '$ world: ip -o link (host ends), ls /run/netsetgo'
ip -o link | awk '{print $2, $9, $10, $11}'; ls -R /run/netsetgo | head -20
echo "--- rootlesskit log:"; cat /run/rk.log | tail -5

say "2. netsetgo -pid CHILD -publish tcp:8080:8080 -publish udp:8053:8053 (as $U)"
asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053; echo "exit $?"
for t in "tcp 192.0.2.1 8080" "udp 192.0.2.1 8053" "tcp 2001:db8:2::1 8080" "udp 2001:db8:2::1 8053"; do
  echo "\$ ip netns exec out client.py $t  ->  $(ip netns exec out $here/client.py $t)"
done
echo '$ nsenter -t CHILD -n ss -tnlu'; nsenter -t $child -n ss -Htnlu
echo '$ world: nft list ruleset | grep -c 8080'; nft list ruleset | grep -c 8080

dump() { echo "  users/: $(cd /run/netsetgo/*/brg0/users && for u in *; do echo -n "$u=$(tr -d '\0 ' <$u) "; done)"
  echo "  leases: $(tr '\0' '\n' </run/netsetgo/*/brg0/leases | grep -a '^10\.' | tr -s ' ' | tr '\n' '|')"
  echo "  host ends on brg0: '$(ip -o link show master brg0 | awk '{print $2}' | tr '\n' ' ')'"
  echo "  nft lines naming 10.10.10.2 / fd00:10::2: $(nft list ruleset | grep -cE '10\.10\.10\.2\b|fd00:10::2\b')"
  for t in "tcp 192.0.2.1 8080" "udp 192.0.2.1 8053"; do echo "  client.py $t -> $(ip netns exec out $here/client.py $t)"; done; }
ms() { echo $(( ($(date +%s%N)-t0)/1000000 )); }
say "3a. rootlesskit exits because its command exits (kill the server, pid $(pgrep -u $U -f peer.py))"
echo "before:"; dump
ino=$(readlink /proc/$child/ns/net)
kill $(pgrep -u $U -f peer.py); t0=$(date +%s%N)
wait $rk; echo "rootlesskit exited with $? after $(ms) ms"
for i in $(seq 50); do [ -z "$(ip -o link show master brg0)" ] && { echo "host end gone $(ms) ms after the command's exit"; break; }; sleep 0.1; done
echo "processes left in the namespace $ino: $(for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$ino" ] && echo -n "${p#/proc/} "; done)"
echo "after exit (no call yet):"; dump
echo "--- the next call on the network (a second rootlesskit that prints its address and exits):"
asuser rootlesskit --net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 \
  --state-dir=$rt/rk2 sh -c 'ip -o addr show dev eth0 scope global' 2>&1 | grep eth0
echo "after the next call (its own instance gone too):"; sleep 1; dump

say "3b. SIGTERM to rootlesskit itself (command: the server again)"
asuser rootlesskit --net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 \
  --state-dir=$rt/rk3 /usr/bin/python3 $here/peer.py 8080 8053 >/run/rk3.log 2>&1 &
rk=$!
for _ in $(seq 100); do [ -s $rt/rk3/child_pid ] && break; sleep 0.1; done
child=$(cat $rt/rk3/child_pid); ino=$(readlink /proc/$child/ns/net); sleep 2
asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053; echo "publish exit $?"
echo "before:"; dump
kill -TERM $rk; t0=$(date +%s%N); wait $rk; echo "rootlesskit exited with $? after $(ms) ms"
sleep 3
echo "3 s later, processes left in the namespace $ino: $(for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$ino" ] && echo -n "${p#/proc/}=$(cat $p/comm) "; done)"
dump
pkill -u $U -f peer.py; sleep 2; echo "after killing what was left, then 2 s:"; dump
asuser rootlesskit --net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 \
  --state-dir=$rt/rk4 sh -c 'ip -o addr show dev eth0 scope global' 2>&1 | grep eth0
echo "after the next call:"; sleep 1; dump
ip netns del out
