#!/usr/bin/env bash
# Which way of starting rootlesskit leaves its child alive after SIGTERM/SIGKILL to rootlesskit
# alone? (None: all four die; see world-a.sh 3f for the previous run's mistake.) Run as
#   unshare --mount --net --propagation private world-x.sh BIN_COPY
set -uo pipefail
bin=$1; here=$(cd "$(dirname "$0")" && pwd)
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo refusing; exit 1; }
for d in /run /etc/netsetgo; do mount -t tmpfs -o mode=0755 tmpfs $d; done
U=nsg-indep; uid=$(id -u $U); gid=$(id -g $U); WNS=$(readlink /proc/self/ns/net)
printf 'network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes\nallow %s default 4\npublish %s default tcp 8080\n' $U $U >/etc/netsetgo/netsetgo.conf
chmod 644 /etc/netsetgo/netsetgo.conf; ip link set lo up
rt=/run/user/$uid; mkdir -p $rt; chown $U: $rt; chmod 700 $rt
cleanup() { for n in $(ps -u $U -o pid=); do kill -KILL $n 2>/dev/null; done; sleep 0.5
  for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$WNS" ] && case $(cat $p/comm 2>/dev/null) in netsetgo*) kill -KILL ${p#/proc/};; esac; done; }
trap cleanup EXIT
rkargs="--net=lxc-user-nic --lxc-user-nic-binary=$bin --lxc-user-nic-bridge=brg0"
for sig in TERM KILL; do for how in bash-bg bash-bg+nsenter bash-bg+publish bash-bg+logfile; do
  sd=$rt/x-$sig-$how
  if [ $how = bash-bg+logfile ]; then
    setpriv --reuid $uid --regid $gid --init-groups env -i HOME=/home/$U XDG_RUNTIME_DIR=$rt PATH=/usr/bin:/bin rootlesskit $rkargs --state-dir=$sd sleep 600 >>/run/rk.log 2>&1 &
    rk=$!
  elif [ ${how%%+*} = bash-bg ]; then
    setpriv --reuid $uid --regid $gid --init-groups env -i HOME=/home/$U XDG_RUNTIME_DIR=$rt PATH=/usr/bin:/bin rootlesskit $rkargs --state-dir=$sd sleep 600 >/dev/null 2>&1 </dev/null &
    rk=$!
  else
    rk=$(python3 -c "
import subprocess,sys
p=subprocess.Popen(['setpriv','--reuid=$uid','--regid=$gid','--init-groups','--','env','-i','HOME=/home/$U','XDG_RUNTIME_DIR=$rt','PATH=/usr/bin:/bin','rootlesskit']+'$rkargs'.split()+['--state-dir=$sd','sleep','600'],stdin=subprocess.DEVNULL,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL,start_new_session=False)
print(p.pid)" )
  fi
  for _ in $(seq 100); do [ -s $sd/child_pid ] && break; sleep 0.1; done; sleep 2
  child=$(cat $sd/child_pid); ino=$(readlink /proc/$child/ns/net)
  case $how in *nsenter) nsenter -t $child -n ip -o addr show dev eth0 >/dev/null;; *publish) setpriv --reuid $uid --regid $gid --init-groups $bin -pid $child -publish tcp:8080:8080 >/dev/null; echo "  publish exit $?";; esac
  echo "[$how, SIG$sig] rootlesskit $rk (ppid $(ps -o ppid= -p $rk | tr -d ' ')) child $child; SigIgn of rootlesskit: $(awk '/^SigIgn/{print $2}' /proc/$rk/status), of child: $(awk '/^SigIgn/{print $2}' /proc/$child/status)"
  kill -$sig $rk; sleep 1.5
  echo "   1.5 s later, left in the namespace: '$(for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$ino" ] && echo -n "${p#/proc/}=$(cat $p/comm) "; done)'; rootlesskit: $(ps -o stat= -p $rk)"
  for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$ino" ] && kill -KILL ${p#/proc/}; done; sleep 1
done; done
