#!/usr/bin/env bash
# Independent re-check of issue 19, check 4 (rootless Docker), after the reaper: run as
#   unshare --mount --net --propagation private world-d.sh BIN_COPY
# Replaces the first run's world-d.sh: every stop is followed by a bounded
# poll (every 20 ms, at most 10 s) for the release of the lease, guard chain,
# DNAT elements and the reaper, with NO further netsetgo call; each of the
# RESTARTS (default 5) runs publishes its ports again.
set -uo pipefail
bin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
for d in /run /etc/netsetgo; do mount -t tmpfs -o mode=0755 tmpfs $d; done
U=nsg-indep; uid=$(id -u $U); gid=$(id -g $U)
WNS=$(readlink /proc/self/ns/net)
cat >/etc/netsetgo/netsetgo.conf <<P
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes
allow $U default 1
publish $U default tcp 8080
publish $U default udp 8081
P
ip link set lo up
ip netns add out
ip link add up0 type veth peer name eth0 netns out
ip addr add 192.0.2.1/24 dev up0; ip addr add 2001:db8:2::1/64 dev up0 nodad; ip link set up0 up
ip -n out addr add 192.0.2.2/24 dev eth0; ip -n out addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n out link set eth0 up; ip -n out link set lo up
D=$(mktemp -d /tmp/indep-docker.XXXX); chmod 755 $D
mkdir -p $D/home $D/run; chown $U: $D/home $D/run; chmod 700 $D/home $D/run
# image: busybox-static, offline
mkdir -p $D/img/rootfs/bin; cp /bin/busybox $D/img/rootfs/bin/; for a in sh nc ping sleep echo cat ip wget; do ln -s busybox $D/img/rootfs/bin/$a; done
tar -C $D/img/rootfs --numeric-owner --owner=0 --group=0 -cf $D/img/layer.tar bin
lsum=$(sha256sum $D/img/layer.tar | cut -d' ' -f1)
echo "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$lsum\"]}}" >$D/img/c.json
csum=$(sha256sum $D/img/c.json | cut -d' ' -f1); mv $D/img/c.json $D/img/$csum.json
echo "[{\"Config\":\"$csum.json\",\"RepoTags\":[\"indep:bb\"],\"Layers\":[\"layer.tar\"]}]" >$D/img/manifest.json
tar -C $D/img -cf $D/image.tar manifest.json $csum.json layer.tar; chmod 644 $D/image.tar
asuser() { setpriv --reuid $uid --regid $gid --init-groups env -i HOME=$D/home XDG_RUNTIME_DIR=$D/run TMPDIR=$D/run PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
dk() { asuser env DOCKER_HOST=unix://$D/run/docker.sock timeout 120 docker "$@"; }
say() { echo; echo "### $*"; }
ms() { echo $(( ($(date +%s%N)-t0)/1000000 )); }
start() {  # the README's settings
  asuser env DOCKERD_ROOTLESS_ROOTLESSKIT_NET=lxc-user-nic \
    DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS="--lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 --state-dir=$D/run/dockerd-rootless" \
    DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none \
    /usr/share/docker.io/contrib/dockerd-rootless.sh --userland-proxy=false --storage-driver=vfs \
    --data-root=$D/home/data --exec-root=$D/run/exec ${V6:-} >>$D/run/daemon.log 2>&1 &
  dpid=$!; t0=$(date +%s%N)
  for _ in $(seq 600); do dk info --format '{{.ServerVersion}}' >/dev/null 2>&1 && break; sleep 0.1; done
  echo "daemon (pid $dpid) answered docker info after $(ms) ms"
}
inworld() { for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = $$ ] && continue
  [ "$(readlink $p/ns/net 2>/dev/null)" = "$WNS" ] && echo "$n"; done; }
reapers() { for n in $(inworld); do [ "$(cat /proc/$n/comm 2>/dev/null)" = netsetgo-reaper ] && echo -n "$n "; done; }
st() { ls -d /run/netsetgo/*/brg0 2>/dev/null | head -1; }
A=10.10.10.2; A6=fd00:10::2; H=veth0a0a0a02
t_host()   { ip link show dev "$H" >/dev/null 2>&1 && echo yes || echo no; }
t_lease()  { tr '\0' '\n' <$(st)/leases 2>/dev/null | grep -a '^10\.' | tr -s ' ' | tr '\n' '|'; }
t_nft()    { nft list ruleset 2>/dev/null | grep -E "$A\b|$A6\b|$H\b|8080|8081" | sed 's/^[ \t]*//'; }
t_nftc()   { t_nft | grep -c .; }
t_guard()  { nft list ruleset 2>/dev/null | grep -c "chain port_"; }
t_ports()  { tr '\0' '\n' <$(st)/ports 2>/dev/null | grep -a -v '^ *$' | tr -s ' ' | tr '\n' '|'; }
stop() { rk=$(pgrep -u $U -x rootlesskit -P ${dpid:-1} || pgrep -u $U -x rootlesskit | head -1); R=$(reapers | awk '{print $NF}')
  echo "  stop: SIGTERM to rootlesskit $rk (reaper $R), then:"
  PUID=$uid $here/poll.py $H $A $A6 $(st) $uid ${R:-0} TERM $rk
  wait $dpid 2>/dev/null; }
dump() { echo "  leases: '$(t_lease)'   ports record: '$(t_ports)'"
  echo "  host ends on brg0: '$(ip -o link show master brg0 2>/dev/null | awk '{print $2}' | tr '\n' ' ')'   reapers in the world: '$(reapers)'"
  echo "  nft lines naming $A / $A6 / $H / 8080 / 8081: $(t_nftc); guard chains (chain port_*): $(t_guard)"; }
cleanup() { dk rm -f svc >/dev/null 2>&1; [ -z "$(pgrep -u $U -x rootlesskit)" ] || stop
  for n in $(ps -u $U -o pid=); do kill -KILL $n 2>/dev/null; done; [ -n "${hostsrv:-}" ] && kill $hostsrv 2>/dev/null
  for n in $(inworld); do c=$(cat /proc/$n/comm 2>/dev/null); case $c in netsetgo*|python3) kill -KILL $n 2>/dev/null;; esac; done
  ip netns del out 2>/dev/null; chmod -R u+w $D 2>/dev/null; rm -rf $D; }
trap cleanup EXIT

say "4. rootless Docker: $(dockerd --version)"
start
dk info --format 'driver={{.Driver}} rootless={{range .SecurityOptions}}{{.}} {{end}}'
child=$(cat $D/run/dockerd-rootless/child_pid)
echo '$ nsenter -t CHILD -n ip -j addr show dev eth0'
nsenter -t $child -n ip -j addr show dev eth0 | jq -c '.[0].addr_info[] | {family,local,prefixlen}'
dk load -i $D/image.tar
python3 $here/peer.py 7000 7001 & hostsrv=$!; sleep 0.5
echo '$ docker run --rm indep:bb sh -c "ping -c1 -W2 10.10.10.1; echo | nc 10.10.10.1 7000; echo | nc fd00:10::1 7000"'
dk run --rm indep:bb sh -c 'ping -c1 -W2 10.10.10.1 | grep -E "bytes from|loss"; echo | nc 10.10.10.1 7000; echo | nc fd00:10::1 7000;'
kill $hostsrv; hostsrv=
echo "--- the README's client-address recipe"
echo "\$ netsetgo -pid CHILD -publish tcp:8080:8080 -publish udp:8081:8081"; asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8081:8081; echo "exit $?"
echo '$ docker run -d --name svc -p 8080:8080 -p 8081:8081/udp indep:bb sleep 600'; dk run -d --name svc -p 8080:8080 -p 8081:8081/udp indep:bb sleep 600 | cut -c1-12
cpid=$(dk inspect -f '{{.State.Pid}}' svc); echo "container pid $cpid, its address $(nsenter -t $cpid -n ip -4 -o addr show dev eth0 | awk '{print $4}')"
# the servers run in the container's network namespace (the image has no python): they report the peer they see
nsenter -t $cpid -n python3 $here/peer.py 8080 8081 & srv=$!; sleep 1
for t in "tcp 192.0.2.1 8080" "udp 192.0.2.1 8081" "tcp 2001:db8:2::1 8080" "udp 2001:db8:2::1 8081"; do
  echo "\$ ip netns exec out client.py $t  ->  $(ip netns exec out $here/client.py $t)"; done
echo "state with the daemon running and the container publishing:"; dump
echo '--- the nft lines:'; t_nft | sed 's/^/    /'
dk rm -f svc >/dev/null; kill $srv 2>/dev/null
stop; echo "after the first stop:"; dump

[ -n "${V6:-}" ] && exit 0
say "4b. restarts: ${RESTARTS:-5} x (start, docker info, netsetgo -publish, stop); no other netsetgo call"
for i in $(seq ${RESTARTS:-5}); do start
  child=$(cat $D/run/dockerd-rootless/child_pid)
  asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8081:8081 >/dev/null; pe=$?
  echo "  run $i: publish exit $pe"; dump; stop; done
echo "after the last stop (no call since):"; dump
echo "processes of $U: '$(ps -u $U -o pid=,comm= | tr '\n' ' ')'"
echo "users/$uid: $(tr -d '\0 \n' <$(st)/users/$uid 2>/dev/null || echo none)"
echo "whole ruleset lines naming 10.10.10.x (x>1) or fd00:10::x (x>1): $(nft list ruleset | grep -cE '10\.10\.10\.([2-9]|[1-9][0-9]+)\b|fd00:10::[2-9a-f]')"
echo "tables: $(nft list tables | tr '\n' ' ')"
dpid=
