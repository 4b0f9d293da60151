#!/usr/bin/env bash
# Independent re-check of issue 19 after the reaper (checks 1-3): run as
#   unshare --mount --net --propagation private world-a.sh BIN_COPY
# Replaces the first run's world-a.sh. Everything happens in this
# private world: tmpfs on /run and /etc/netsetgo; an "outside" namespace
# joined by a veth. Check 3 now sends each signal through poll.py, which then
# polls (files and interface every 2 ms, nft every 20 ms, at most 10 s) for
# the release of each trace with NO further netsetgo call.
set -uo pipefail
bin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
for d in /run /etc/netsetgo; do mount -t tmpfs -o mode=0755 tmpfs $d; done
U=nsg-indep; uid=$(id -u $U); gid=$(id -g $U)
WNS=$(readlink /proc/self/ns/net)
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
ms() { echo $(( ($(date +%s%N)-t0)/1000000 )); }
# processes whose net namespace is this world's or whose uid is U, or named netsetgo-*
inworld() { for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = $$ ] && continue
  [ "$(readlink $p/ns/net 2>/dev/null)" = "$WNS" ] && echo "$n"; done; }
reapers() { for n in $(inworld); do [ "$(cat /proc/$n/comm 2>/dev/null)" = netsetgo-reaper ] && echo -n "$n "; done; }
responders() { for n in $(inworld); do c=$(cat /proc/$n/comm 2>/dev/null); case $c in netsetgo*) [ "$c" != netsetgo-reaper ] && echo -n "$n=$c ";; esac; done; }
cleanup() {  # kill, by pid, what this world started: U's processes, then this world's reapers/responders
  for n in $(ps -u $U -o pid=); do kill -KILL $n 2>/dev/null; done
  sleep 0.5
  for n in $(inworld); do c=$(cat /proc/$n/comm 2>/dev/null); case $c in netsetgo*|python3|sleep|rootlesskit|exe) kill -KILL $n 2>/dev/null;; esac; done
  ip netns del out 2>/dev/null; }
trap cleanup EXIT

# --- the traces of one lease (address A, its IPv6 A6, its host end H)
st() { ls -d /run/netsetgo/*/brg0 2>/dev/null | head -1; }
t_host()   { ip link show dev "$H" >/dev/null 2>&1 && echo yes || echo no; }  # not /sys: that is the machine's sysfs
t_lease()  { tr '\0' '\n' <$(st)/leases 2>/dev/null | grep -a "^$A " | tr -s ' ' | head -1; }
t_users()  { [ -e $(st)/users/$uid ] && tr -d '\0 \n' <$(st)/users/$uid || echo -n '(none)'; }
t_ports()  { tr '\0' '\n' <$(st)/ports 2>/dev/null | grep -a -v '^ *$' | tr -s ' ' | tr '\n' '|'; }
t_nft()    { nft list ruleset 2>/dev/null | grep -E "$A\b|$A6\b|$H\b|808[0]|8053" | sed 's/^[ \t]*//'; }
t_nftc()   { t_nft | grep -c .; }
t_addr6()  { ip -6 neigh show 2>/dev/null | grep -c "$A6 "; }
dump() {
  echo "  host end $H present: $(t_host)"
  echo "  lease record: '$(t_lease)'   users/$uid: $(t_users)"
  echo "  ports record: '$(t_ports)'"
  echo "  nft lines naming $A / $A6 / $H / 8080 / 8053: $(t_nftc)"
  echo "  reapers in this world: '$(reapers)'   other netsetgo processes: '$(responders)'"
  for t in "tcp 192.0.2.1 8080" "udp 192.0.2.1 8053"; do echo "  client.py $t -> $(ip netns exec out $here/client.py $t)"; done; }
start_rk() {  # $1 state dir name, rest: command
  local sd=$rt/$1; shift
  asuser rootlesskit --net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0 \
    --state-dir=$sd "$@" >>/run/rk.log 2>&1 &
  rk=$!   # the subshell that runs the function asuser (bash forks for a function in the background)
  for _ in $(seq 100); do [ -s $sd/child_pid ] && break; sleep 0.1; done
  rkp=$(pgrep -u $U -x rootlesskit -P $rk)   # rootlesskit itself (setpriv and env exec, so it is the subshell's child)
  child=$(cat $sd/child_pid); ino=$(readlink /proc/$child/ns/net)
  for _ in $(seq 100); do nsenter -t $child -n ip -6 addr show dev eth0 scope global 2>/dev/null | grep -q inet6 && \
    nsenter -t $child -n ip -4 addr show dev eth0 2>/dev/null | grep -q inet && break; sleep 0.1; done
  A=$(nsenter -t $child -n ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  A6=$(nsenter -t $child -n ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)
  H=$(ip -o link show master brg0 | awk -F': ' '{print $2}' | cut -d@ -f1 | tail -1)
  R=$(reapers | awk '{print $NF}')
  echo "rootlesskit pid $rkp (its shell $rk), child_pid $child, netns $ino, eth0 $A $A6, host end $H, reaper $R"
}
left_in_ns() { for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$ino" ] && echo -n "${p#/proc/}=$(cat $p/comm) "; done; }

say "1. rootlesskit --net=lxc-user-nic with the installed copy ($(rootlesskit --version))"
start_rk rk /usr/bin/python3 $here/peer.py 8080 8053
sleep 2  # let DAD finish
echo '$ nsenter -t CHILD -n ip -j addr show dev eth0 | jq (family, local, prefixlen, scope)'
nsenter -t $child -n ip -j addr show dev eth0 | jq -c '.[0].addr_info[] | {family,local,prefixlen,scope,dynamic,tentative}'
echo '$ nsenter -t CHILD -n ip -j -4 route; ip -j -6 route'
nsenter -t $child -n ip -j -4 route | jq -c '.[]|{dst,gateway,dev,protocol}'
nsenter -t $child -n ip -j -6 route | jq -c '.[]|{dst,gateway,dev,protocol}'
echo '$ ping from the namespace: 10.10.10.1 and fd00:10::1'
nsenter -t $child -n ping -c1 -W2 10.10.10.1 | grep -E 'loss'; nsenter -t $child -n ping -c1 -W2 fd00:10::1 | grep -E 'loss'
echo '$ world: ls /run/netsetgo/*/brg0; host ends on brg0'
ls $(st); ip -o link show master brg0 | awk '{print $2}'
echo "reaper(s) in this world: $(for n in $(reapers); do echo -n "$n uid=$(awk '/^Uid/{print $2"/"$3"/"$4}' /proc/$n/status) CapEff=$(awk '/^CapEff/{print $2}' /proc/$n/status) NoNewPrivs=$(awk '/^NoNewPrivs/{print $2}' /proc/$n/status) sid=$(ps -o sid= -p $n | tr -d ' ') "; done)"
r=$(reapers); r=${r%% *}
echo "\$ (as $U) kill -TERM <reaper $r>: $(asuser kill -TERM $r 2>&1; echo "exit $?")"
echo "reaper still there: $( [ -d /proc/$r ] && echo yes || echo no)"

say "2. netsetgo -pid CHILD -publish tcp:8080:8080 -publish udp:8053:8053 (as $U)"
asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053; echo "exit $?"
for t in "tcp 192.0.2.1 8080" "udp 192.0.2.1 8053" "tcp 2001:db8:2::1 8080" "udp 2001:db8:2::1 8053"; do
  echo "\$ ip netns exec out client.py $t  ->  $(ip netns exec out $here/client.py $t)"
done
echo '$ nsenter -t CHILD -n ss -tnlu'; nsenter -t $child -n ss -Htnlu
echo "reapers now: '$(reapers)' (a -pid call leaves none)"
echo '--- the traces before check 3a (the nft lines themselves):'; t_nft | sed 's/^/    /'

say "3a. rootlesskit exits because its command exits (kill the server, pid $(pgrep -u $U -x python3))"
echo "before:"; dump
$here/poll.py $H $A $A6 $(st) $uid $R TERM $(pgrep -u $U -x python3)
wait $rk; echo "rootlesskit's shell exited with $? (t0 = the server's SIGTERM)"
echo "processes left in the namespace $ino: '$(left_in_ns)'"
echo "after, no netsetgo call:"; dump

say "3b. SIGKILL to rootlesskit and its child at once (command: the server)"
start_rk rk3 /usr/bin/python3 $here/peer.py 8080 8053; sleep 2
asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053 >/dev/null; echo "publish exit $?"
echo "before:"; dump
$here/poll.py $H $A $A6 $(st) $uid $R KILL $rkp $child; wait $rk; echo "rootlesskit's shell exited with $? (t0 = the SIGKILL)"
echo "processes left in the namespace $ino: '$(left_in_ns)'"
echo "after, no netsetgo call:"; dump
if [ -n "$(left_in_ns)" ]; then
  echo "--- something is left in the namespace; killing it (by pid) and polling again"
  l=$(left_in_ns); $here/poll.py $H $A $A6 $(st) $uid $R KILL $(for n in $l; do echo ${n%%=*}; done); dump
fi

say "3c. SIGKILL to rootlesskit alone (command: the server)"
start_rk rk4 /usr/bin/python3 $here/peer.py 8080 8053; sleep 2
asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053 >/dev/null; echo "publish exit $?"
$here/poll.py $H $A $A6 $(st) $uid $R KILL $rkp; wait $rk; echo "rootlesskit's shell exited with $? (t0 = the SIGKILL)"
echo "processes left in the namespace $ino: '$(left_in_ns)'"
echo "after, no netsetgo call:"; dump
if [ -n "$(left_in_ns)" ]; then
  echo "--- something is left in the namespace; killing it (by pid) and polling again"
  l=$(left_in_ns); $here/poll.py $H $A $A6 $(st) $uid $R KILL $(for n in $l; do echo ${n%%=*}; done); dump
fi

say "3d. SIGTERM to rootlesskit (command: sleep 600, as the project's test; and then the server)"
for cmd in "sleep 600" "/usr/bin/python3 $here/peer.py 8080 8053"; do
  start_rk rk5 $cmd; sleep 2
  asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053 >/dev/null; echo "[$cmd] publish exit $?"
  $here/poll.py $H $A $A6 $(st) $uid $R TERM $rkp; wait $rk; echo "rootlesskit's shell exited with $? (t0 = the SIGTERM)"
  echo "processes left in the namespace $ino: '$(left_in_ns)'"
  echo "after, no netsetgo call:"; dump
  if [ -n "$(left_in_ns)" ]; then
    echo "--- something is left in the namespace; killing it (by pid) and polling again"
    l=$(left_in_ns); $here/poll.py $H $A $A6 $(st) $uid $R KILL $(for n in $l; do echo ${n%%=*}; done); dump
  fi
  rm -rf $rt/rk5
done

say "3f. what the previous run's 3b did: SIGTERM to \$! of 'asuser rootlesskit ... &' (the bash subshell, not rootlesskit)"
start_rk rk7 /usr/bin/python3 $here/peer.py 8080 8053; sleep 1
echo "\$! = $rk is '$(ps -o comm= -p $rk)'; rootlesskit is $rkp"
kill -TERM $rk; sleep 1.5
echo "1.5 s after SIGTERM to $rk: it is '$(ps -o stat=,comm= -p $rk)'; rootlesskit $rkp is '$(ps -o stat=,comm= -p $rkp)'; left in the namespace: '$(left_in_ns)'"
echo "now SIGTERM to rootlesskit $rkp itself:"
$here/poll.py $H $A $A6 $(st) $uid $R TERM $rkp; sleep 0.5; echo "left in the namespace: '$(left_in_ns)'"; rm -rf $rt/rk7

say "3e. repeat 3a ${REPEAT:-10} times (release timings)"
for i in $(seq ${REPEAT:-10}); do
  start_rk rk6 /usr/bin/python3 $here/peer.py 8080 8053
  asuser $bin -pid $child -publish tcp:8080:8080 -publish udp:8053:8053 >/dev/null
  [ "$(t_nftc)" -gt 0 ] || echo "  (no nft lines before?)"
  echo "  run $i:"; $here/poll.py $H $A $A6 $(st) $uid $R TERM $(pgrep -u $U -x python3); wait $rk
  rm -rf $rt/rk6
done
echo "final state of the world's netsetgo files:"; ls -la $(st); echo "users: $(ls $(st)/users 2>/dev/null)"
echo "leases file, records: '$(tr '\0' '\n' <$(st)/leases | grep -a . | tr -s ' ' | tr '\n' '|')'"
echo "nft ruleset lines naming 10.10.10.x or fd00:10::x (host ones excluded): $(nft list ruleset | grep -E '10\.10\.10\.([2-9]|[1-9][0-9])\b|fd00:10::[2-9a-f]' | wc -l)"
echo "reapers left: '$(reapers)'"
echo "(no /dev/log on this machine: the helper's syslog audit is skipped, so action=reap records were not observed)"
