# The scenario sets. Each step records what happened (see lib.sh); the host decides whether
# it is right (test/e2e/), so these scripts drive the guest and never judge.

MODDIR=/lib/modules/$(uname -r)
KMODLOAD=/usr/bin/kmodload
# The product's default wrapper path, installed by `kmodload hook-config --install-wrapper`.
HOOK=/usr/local/libexec/kmodload/kmodload-hook
HOOK_LOG=/run/kmodload-hook.log
LZMA=/usr/lib/x86_64-linux-gnu/liblzma.so.5

# The hook configurations kmodload prints for this installation, and its wrapper.
install_hook() {
  run hook.isulad $KMODLOAD hook-config --format isulad --install-wrapper $HOOK --log $HOOK_LOG
  cp /tmp/run.out /run/hooks-isulad.json
  run hook.oci $KMODLOAD hook-config --format oci --wrapper $HOOK --log $HOOK_LOG
  cp /tmp/run.out /run/hooks-oci.json
}

# make_bundle DIR isulad|oci KERNEL_MODULES
make_bundle() {
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json "/run/hooks-$2.json" "$2" "$3" "$1"
}

# 1. The seed's example: runc runs the hook at prestart, the container runs.
s1() {
  snapshot s1.before
  make_bundle /run/s1 isulad ip_vs,ip_vs_wrr
  run s1.runc runc run --no-pivot --bundle /run/s1 e2e-s1
  run s1.hooklog cat $HOOK_LOG
}

# 5. Already live, and builtin: success, nothing changes. Runs after s1.
s5() {
  snapshot s5.before
  run s5.live $KMODLOAD load ip_vs ip_vs_wrr
  run s5.builtin $KMODLOAD load mq-deadline
  run s5.builtin.modprobe $MODPROBE mq-deadline
}

# 7. Unload, against modprobe -r from the same starting point. Runs after s1.
s7() {
  snapshot s7.before
  run s7.in_use $KMODLOAD unload ip_vs
  run s7.builtin $KMODLOAD unload mq-deadline
  run s7.unload $KMODLOAD unload ip_vs_wrr ip_vs
  unload_all s7.clean
  run s7.modprobe.load $MODPROBE -a ip_vs ip_vs_wrr
  run s7.modprobe.in_use $MODPROBE -r ip_vs
  run s7.modprobe.unload $MODPROBE -r ip_vs_wrr ip_vs
  unload_all s7.modprobe.clean
}

# 6. Refusals load nothing. modprobe's answers are recorded last, for the failure messages.
s6() {
  unload_all s6.before
  run s6.unknown $KMODLOAD load dummy no_such_module_e2e
  run s6.blacklisted $KMODLOAD load fs-minix
  run s6.install_false $KMODLOAD load qnx4
  run s6.invalid $KMODLOAD load ip_vs 'ip_vs;reboot'
  run s6.invalid_path $KMODLOAD load ../kernel/net/netfilter/ipvs/ip_vs
  make_bundle /run/s6 isulad ip_vs_rr,no_such_module_e2e
  run s6.runc runc run --no-pivot --bundle /run/s6 e2e-s6
  runc delete -f e2e-s6 > /dev/null 2>&1
  run s6.unknown.modprobe $MODPROBE -a dummy no_such_module_e2e
  run s6.blacklisted.modprobe $MODPROBE fs-minix
  run s6.install_false.modprobe $MODPROBE qnx4
  unload_all s6.clean
}

LOOP_PARAMS="/sys/module/loop/parameters/max_loop /sys/module/loop/parameters/max_part /sys/module/loop/parameters/hw_queue_depth"

# 4. Options: modprobe.d (max_part), kernel command line (max_loop), caller (hw_queue_depth).
s4() {
  unload_all s4.before
  run s4.modprobe $MODPROBE loop hw_queue_depth=64
  run s4.modprobe.params grep . $LOOP_PARAMS
  unload_all s4.modprobe.clean
  run s4.cli $KMODLOAD load -o loop=hw_queue_depth=64 loop
  run s4.cli.params grep . $LOOP_PARAMS
  unload_all s4.cli.clean
  run s4.api node -e "
    require('/usr/lib/node_modules/kmodload')
      .load(['loop'], { extraOptions: { loop: 'hw_queue_depth=32' } })
      .then((r) => { console.log(JSON.stringify(r.modules)); process.exit(r.ok ? 0 : 1); },
            (e) => { console.error(String(e && e.message)); process.exit(3); });"
  run s4.api.params grep . $LOOP_PARAMS
  unload_all s4.api.clean
}

# 3. Compression: one module per format (see build-initramfs.sh), kmodload then modprobe.
s3() {
  run s3.files sh -c "for f in \$(find $MODDIR -name 'tcp_bic.*' -o -name 'tcp_htcp.*' \
    -o -name 'tcp_highspeed.*' -o -name 'tcp_hybla.*'); do
      echo \"\${f#$MODDIR/} \$(head -c 6 \$f | od -An -tx1)\"; done"
  for m in tcp_bic tcp_htcp tcp_highspeed tcp_hybla; do
    unload_all s3.$m.pre
    run s3.$m $KMODLOAD load $m
    unload_all s3.$m.clean
    run s3.$m.modprobe $MODPROBE $m
    unload_all s3.$m.modprobe.clean
  done
  # With liblzma hidden, only the kernel can decompress xz: proves which path was taken.
  run s3.kernel_xz unshare -m sh -c "mount --bind /dev/null $LZMA && exec $KMODLOAD load tcp_bic"
  unload_all s3.kernel_xz.clean
}

# 2. The same modules live after kmodload as after modprobe -a, request by request.
S2_REQUESTS='ip_vs,ip_vs_wrr fs-xfs crypto-crc32c
  pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00 symbol:udp_tunnel_sock_release
  dummy bonding 8021q br_netfilter vxlan nf_tables fs-overlay ip-vs-rr,tcp_bbr tcp_diag
  veth,tun,veth'
s2() {
  i=0
  for request in $S2_REQUESTS; do
    names=$(echo "$request" | tr , ' ')
    unload_all s2.$i.pre
    run s2.$i.modprobe $MODPROBE -a $names
    unload_all s2.$i.mid
    run s2.$i.kmodload $KMODLOAD load $names
    i=$((i + 1))
  done
  unload_all s2.clean
}

# 8. Sixteen hooks at once, as a runtime starting sixteen containers; half ask for the
# seed's set, the rest overlap with it.
S8_OTHERS='ip_vs_rr,ip_vs nf_conntrack,libcrc32c xfs ip_vs_sh crc32c_generic,ip_vs_wrr tcp_diag
  nf_tables ip_vs_wrr,ip_vs_rr,ip_vs_sh'
S8_UNION='ip_vs ip_vs_wrr ip_vs_rr nf_conntrack libcrc32c xfs ip_vs_sh crc32c_generic tcp_diag
  nf_tables'
s8() {
  unload_all s8.before
  i=0
  for other in $S8_OTHERS; do
    for request in ip_vs,ip_vs_wrr $other; do
      i=$((i + 1))
      mkdir -p /run/s8/$i
      printf '{"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/","env":["PATH=/bin","KERNEL_MODULES=%s"]},"root":{"path":"rootfs"}}\n' \
        "$request" > /run/s8/$i/config.json
      printf '{"ociVersion":"1.0.2","id":"e2e-s8-%d","status":"creating","pid":1,"bundle":"/run/s8/%d"}\n' \
        "$i" "$i" > /run/s8/$i/state.json
    done
  done
  t0=$(uptime_ms)
  for n in $(seq 1 $i); do
    (
      env -i $HOOK hook --state prestart < /run/s8/$n/state.json > /run/s8/$n/out 2> /run/s8/$n/err
      echo $? > /run/s8/$n/rc
    ) &
  done
  wait
  t1=$(uptime_ms)
  for n in $(seq 1 $i); do
    emit s8.hook.$n "$(cat /run/s8/$n/rc)" "hook KERNEL_MODULES=$(sed 's/.*KERNEL_MODULES=\([^"]*\).*/\1/' /run/s8/$n/config.json)" \
      /run/s8/$n/out /run/s8/$n/err $((t1 - t0))
  done
  snapshot s8.after
  unload_all s8.clean
  run s8.modprobe $MODPROBE -a $S8_UNION
  unload_all s8.modprobe.clean
}

# 10. A host policy in the hook: ip_vs* allowed, xfs denied, everything else by default deny.
# The seed's request loads what modprobe -a loads; fs-xfs (an alias of xfs) loads nothing.
s10() {
  unload_all s10.before
  printf 'default deny\nallow ip_vs*\ndeny xfs\n' > /run/policy.conf
  run s10.hooks $KMODLOAD hook-config --format isulad --wrapper $HOOK --log $HOOK_LOG \
    --policy /run/policy.conf
  cp /tmp/run.out /run/hooks-policy.json
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json /run/hooks-policy.json isulad \
    ip_vs,ip_vs_wrr /run/s10
  run s10.seed runc run --no-pivot --bundle /run/s10 e2e-s10
  unload_all s10.mid
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json /run/hooks-policy.json isulad \
    fs-xfs /run/s10x
  run s10.xfs runc run --no-pivot --bundle /run/s10x e2e-s10x
  runc delete -f e2e-s10x > /dev/null 2>&1
  run s10.hooklog tail -n 4 $HOOK_LOG
  run s10.modprobe $MODPROBE -a ip_vs ip_vs_wrr
  unload_all s10.clean
}

# 11. Holds: containers hold what they asked for, and the hook's --unload-on-stop unloads at
# poststop what the last container needing it asked for. dummy is loaded by modprobe first
# (kmodload must never remove it); A asks for ip_vs,ip_vs_wrr,dummy, B for ip_vs_sh.
S11_ROUNDS='ip_vs,ip_vs_wrr ip_vs_sh nf_conntrack,tcp_diag ip_vs_rr,ip_vs veth tun,veth xfs ip_vs_wrr,ip_vs_sh
  tcp_diag ip_vs nf_tables,ip_vs_rr veth,bonding 8021q ip_vs_wrr xfs,tun ip_vs_sh,tcp_diag
  bonding,8021q nf_tables ip_vs ip_vs,ip_vs_rr,ip_vs_sh veth tcp_diag,xfs vxlan ip_vs_wrr,nf_conntrack'
s11_start() { # ID KERNEL_MODULES: a container that sleeps, from the bundle made once below
  mkdir -p "/run/s11/$1"
  sed "s/KERNEL_MODULES=REQUEST/KERNEL_MODULES=$2/" /run/s11/template/config.json \
    > "/run/s11/$1/config.json"
  runc run -d --no-pivot --bundle "/run/s11/$1" "$1" > "/run/s11/$1.out" 2>&1
}
s11_stop() { # ID: the container's process killed, then runc deletes it (poststop runs)
  runc kill "$1" KILL > /dev/null 2>&1
  runc delete -f "$1"
}
s11() {
  unload_all s11.before
  mkdir -p /run/s11
  # Eight hooks at once under TCG take longer than the 30 s a runtime allows by default.
  run s11.hooks $KMODLOAD hook-config --format isulad --wrapper $HOOK --log $HOOK_LOG \
    --unload-on-stop --timeout 600
  cp /tmp/run.out /run/hooks-holds.json
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json /run/hooks-holds.json isulad REQUEST \
    /run/s11/template /bin/busybox sleep 600
  run s11.dummy $MODPROBE dummy
  run s11.a.start s11_start e2e-s11a ip_vs,ip_vs_wrr,dummy
  run s11.b.start s11_start e2e-s11b ip_vs_sh
  run s11.status.both $KMODLOAD status
  run s11.a.stop runc delete -f e2e-s11a
  run s11.status.a $KMODLOAD status
  # kill -9 of B's process, then runc's delete: the same as a normal stop.
  run s11.b.kill sh -c "kill -9 \$(runc state e2e-s11b | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')"
  run s11.b.stop runc delete -f e2e-s11b
  run s11.status.b $KMODLOAD status --json
  # Eight containers with overlapping requests, started and stopped all at once, three times.
  round=0
  set -- $S11_ROUNDS
  while [ $round -lt 3 ]; do
    i=0
    for n in 1 2 3 4 5 6 7 8; do
      eval "request=\${$((round * 8 + n))}"
      s11_start "e2e-s11-$round-$n" "$request" &
    done
    wait
    snapshot s11.round$round.up
    for n in 1 2 3 4 5 6 7 8; do s11_stop "e2e-s11-$round-$n" > /dev/null 2>&1 & done
    wait
    snapshot s11.round$round.down
    round=$((round + 1))
  done
  run s11.status.end $KMODLOAD status --json
  run s11.hooklog grep -c . $HOOK_LOG
  unload_all s11.clean
}

# 12. No node: the seed's request through runc in a chroot (/opt/nonode, see build-initramfs.sh)
# that has the single executable, busybox and runc, and no node. The configuration is the one
# the executable prints for itself (it names itself, no wrapper); modprobe -a follows.
NONODE=/opt/nonode
s12_mount() {
  # A mount point of its own: runc (--no-pivot) changes the propagation of its root.
  mount --bind $NONODE $NONODE
  mount -t proc proc $NONODE/proc
  mount --rbind /sys $NONODE/sys
  mount --bind /dev $NONODE/dev
  mount -t tmpfs -o mode=0755 tmpfs $NONODE/run
  mount -t tmpfs tmpfs $NONODE/tmp
  mount --bind /usr/lib/modules $NONODE/usr/lib/modules
  mount --bind /opt/e2e/rootfs $NONODE/opt/e2e/rootfs
}
s12() {
  unload_all s12.before
  s12_mount
  run s12.no_node chroot $NONODE /bin/sh -c 'ls /usr/bin /usr/sbin; command -v node || exit 0; exit 1'
  run s12.hooks chroot $NONODE /usr/bin/kmodload hook-config --format oci --log /run/hook.log
  cp /tmp/run.out /run/hooks-nonode.json
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json /run/hooks-nonode.json oci \
    ip_vs,ip_vs_wrr $NONODE/run/s12
  run s12.runc chroot $NONODE runc run --no-pivot --bundle /run/s12 e2e-s12
  run s12.hooklog cat $NONODE/run/hook.log
  umount -l $NONODE
  unload_all s12.mid
  run s12.modprobe $MODPROBE -a ip_vs ip_vs_wrr
  unload_all s12.clean
}

# 13. The seed's request as whole processes, in this boot: kmodload load (node), the single
# executable, modprobe -a, and node -e 0 as the baseline; three rounds, alternating.
s13() {
  for i in 1 2 3; do
    unload_all s13.$i.pre
    run s13.$i.modprobe $MODPROBE -a ip_vs ip_vs_wrr
    unload_all s13.$i.mid
    run s13.$i.kmodload $KMODLOAD load ip_vs ip_vs_wrr
    unload_all s13.$i.mid2
    run s13.$i.binary $NONODE/usr/bin/kmodload load ip_vs ip_vs_wrr
    unload_all s13.$i.mid3
    run s13.$i.node node -e 0
  done
  unload_all s13.clean
}

# 14. containerd through its CRI socket, with NRI on (Debian 13's containerd 1.7, only in images
# built with --containerd). (a) With no plugin, a pod (host network) with one container runs,
# stops and goes away, and KERNEL_MODULES loads nothing. (b) `kmodload nri` connects as an
# external NRI plugin. (c) A container's KERNEL_MODULES (pod A: the seed's set) and a pod
# annotation (pod B: one module more) load what they ask for; a container asking for a denied
# module is refused, with the plugin's reason in the runtime's error (pod C). (d) After kill -9 the plugin starts again and rebuilds
# its holds from the running containers. (e) Stopping A and B unloads what they loaded.
# (f) The plugin's log. Every wait is bounded; containerd's log ends the report.
CRI_CLIENT=/opt/e2e/cri.js
NRI_SOCKET=/var/run/nri/nri.sock
NRI_LOG=/var/log/kmodload/nri.log
NRI_STATE=/run/kmodload
S14=/run/s14
cri() { node $CRI_CLIENT "$@"; }
# PID has exited (a child not yet waited for is a zombie: kill -0 would still find it).
pid_exited() { [ ! -e "/proc/$1" ] || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2> /dev/null)" = Z ]; }
cri_ready() { # DIR
  cri --timeout 10 version > "$1/version.out" 2> "$1/version.err"
}
# containerd_start DIR KEY: containerd with the guest's configuration, its log and pid file in
# DIR; KEY tells whether CRI answered within 60 s.
containerd_start() {
  containerd --config /opt/e2e/containerd.toml > "$1/containerd.log" 2>&1 < /dev/null &
  echo $! > "$1/containerd.pid"
  if wait_until 60 cri_ready "$1"; then
    outcome "$2" 0 "CRI answers on /run/containerd/containerd.sock"
  else
    outcome "$2" 1 "no CRI answer within 60 s (containerd $(pid_exited "$(cat "$1/containerd.pid")" && echo exited || echo running))"
  fi
}
# The plugin has said it is registered, or is gone.
s14_plugin_settled() { grep -qw registered "$1" || pid_exited "$2"; }
s14_plugin_start() { # KEY
  _t0=$(uptime_ms)
  $KMODLOAD nri --socket $NRI_SOCKET --log $NRI_LOG --state-dir $NRI_STATE --unload-on-stop \
    --policy $S14/policy.conf > "$S14/$1.out" 2> "$S14/$1.err" < /dev/null &
  _pid=$!
  echo $_pid > $S14/nri.pid
  wait_until 30 s14_plugin_settled "$S14/$1.err" $_pid
  if grep -qw registered "$S14/$1.err"; then
    _rc=0
  elif pid_exited $_pid; then
    wait $_pid
    _rc=$?
  else
    _rc=124
  fi
  emit "s14.$1" $_rc "kmodload nri (until 'registered' on stderr)" "$S14/$1.out" "$S14/$1.err" \
    $(($(uptime_ms) - _t0))
}
stop_process() { # PIDFILE: TERM, then KILL after 10 s; the process is a child of this shell
  _pid=$(cat "$1" 2> /dev/null) || return 0
  kill "$_pid" 2> /dev/null || return 0
  wait_until 10 pid_exited "$_pid" || kill -9 "$_pid" 2> /dev/null
  wait "$_pid" 2> /dev/null
  rm -f "$1"
}
s14() {
  unload_all s14.before
  _s14_t0=$(uptime_ms)
  mkdir -p $S14
  # The plugin starts from an empty state directory: the holds that earlier scenarios' hooks
  # left there (scenario 8's name pid 1, which lives) are not this scenario's.
  rm -rf $NRI_STATE
  # The policy of scenario 10: ip_vs* and what it needs, xfs never, nothing else.
  printf 'default deny\nallow ip_vs*\ndeny xfs\n' > $S14/policy.conf
  containerd_start $S14 s14.containerd
  emit s14.version 0 "cri version" $S14/version.out $S14/version.err 0
  run s14.import ctr -n k8s.io images import --snapshotter native /opt/cri/image.tar
  # (a) no plugin
  run s14.plain.up cri up s14-plain --env KERNEL_MODULES=ip_vs,ip_vs_wrr
  run s14.plain.down cri down s14-plain
  # (b) the plugin
  s14_plugin_start plugin
  # (c) requests through the runtime
  snapshot s14.start
  run s14.a.up cri up s14-a --env KERNEL_MODULES=ip_vs,ip_vs_wrr
  # B asks for one module more than A, so that the annotation's effect shows in /proc/modules.
  run s14.b.up cri up s14-b --pod-annotation org.kmodload.kernel-modules=ip_vs,ip_vs_wrr,ip_vs_sh
  run s14.c.up cri up s14-c --env KERNEL_MODULES=xfs
  run s14.c.down cri down s14-c
  # (d) kill -9, then again: Synchronize tells the new plugin about A and B
  run s14.kill sh -c "kill -9 \$(cat $S14/nri.pid)"
  wait "$(cat $S14/nri.pid)" 2> /dev/null
  s14_plugin_start restart
  run s14.holds sh -c "cd $NRI_STATE/holds && for f in *; do echo \"== \$f\"; cat \"\$f\"; echo; done"
  # (e) stop and remove A and B
  run s14.a.down cri down s14-a
  run s14.b.down cri down s14-b
  snapshot s14.end
  # (e2) the seed by the pod annotation alone, from nothing loaded
  run s14.d.up cri up s14-d --pod-annotation org.kmodload.kernel-modules=ip_vs,ip_vs_wrr
  run s14.d.down cri down s14-d
  # (f) the plugin's decisions, then everything stopped
  run s14.log cat $NRI_LOG
  stop_process $S14/nri.pid
  run s14.restart.err cat $S14/restart.err
  stop_process $S14/containerd.pid
  run s14.containerd.log tail -n 60 $S14/containerd.log
  outcome s14.time 0 "ms=$(($(uptime_ms) - _s14_t0))"
  unload_all s14.clean
}

# 16. The start/stop race of holds under --unload-on-stop, with real containers: each round,
# container A (holding ip_vs_wrr, and tun after the first round) is deleted (poststop, unload)
# at the same moment as container B starts asking for ip_vs_wrr,tun; B's process checks that
# every module it asked for is live. Rounds are chained (B is the next round's A), so that each
# costs one concurrent stop and start. A state directory of its own: holds that scenario 8 left
# on pid 1 (which lives) would cover ip_vs_wrr and hide the race.
S16=/run/s16
S16_ROUNDS=50
s16_start() { # ID KERNEL_MODULES
  mkdir -p "$S16/$1"
  sed "s/KERNEL_MODULES=REQUEST/KERNEL_MODULES=$2/" $S16/template/config.json > "$S16/$1/config.json"
  runc run -d --no-pivot --bundle "$S16/$1" "$1" > "$S16/$1.out" 2>&1
  _rc=$?
  echo $_rc > "$S16/$1.start.rc"
  return $_rc
}
s16_stop() { # ID: runc kills the process and deletes the container (poststop runs)
  runc delete -f "$1" > "$S16/$1.stop.out" 2>&1
  echo $? > "$S16/$1.stop.rc"
}
# The container printed the status of its check (its stdout is the file runc run -d got), or
# never will: runc did not start it.
s16_settled() { [ "$(cat "$S16/$1.start.rc")" != 0 ] || grep -q '^live-check=' "$S16/$1.out"; }
s16() {
  unload_all s16.before
  _s16_t0=$(uptime_ms)
  mkdir -p $S16
  run s16.hooks $KMODLOAD hook-config --format isulad --wrapper $HOOK --log $HOOK_LOG \
    --unload-on-stop --timeout 600 --state-dir $S16/state
  cp /tmp/run.out $S16/hooks.json
  # The process: `test -d /sys/module/M` for each module of KERNEL_MODULES, its status printed.
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json $S16/hooks.json isulad REQUEST \
    $S16/template /bin/sh -c 'IFS=,; live=0; for m in $KERNEL_MODULES; do
      test -d /sys/module/$m || { echo "not live: $m"; live=1; }; done
      echo "live-check=$live"; exec /bin/busybox sleep 600'
  run s16.a s16_start e2e-s16-0 ip_vs_wrr
  a=e2e-s16-0
  round=1
  while [ $round -le $S16_ROUNDS ]; do
    b=e2e-s16-$round
    _t0=$(uptime_ms)
    s16_stop $a &
    s16_start $b ip_vs_wrr,tun &
    wait
    wait_until 60 s16_settled $b
    _t1=$(uptime_ms)
    _live=$(sed -n 's/^live-check=//p' "$S16/$b.out")
    {
      cat "$S16/$b.out"
      echo "start=$(cat "$S16/$b.start.rc") stop=$(cat "$S16/$a.stop.rc")"
    } > $S16/round.out
    cat "$S16/$a.stop.out" > $S16/round.err
    # No status line (125): B's process never ran.
    emit "s16.$round" "${_live:-125}" "delete $a & run $b (KERNEL_MODULES=ip_vs_wrr,tun)" \
      $S16/round.out $S16/round.err $((_t1 - _t0))
    a=$b
    round=$((round + 1))
  done
  run s16.last runc delete -f $a
  run s16.status $KMODLOAD status --json --state-dir $S16/state
  outcome s16.time 0 "ms=$(($(uptime_ms) - _s16_t0))"
  unload_all s16.clean
}

# 17. Debian 13's crun 1.21 beside runc (images built with --containerd only: crun runs from
# /opt/crun with trixie's own loader and libraries). The policy of scenario 10 throughout.
# (a) The hooks as `kmodload hook-config --format oci --unload-on-stop` prints them for crun,
#     merged into a config.json, plus a hook per stage that keeps the state crun sends:
#     `crun run -d` loads the seed's request, the container reads it in /proc/modules, and
#     `crun delete` unloads it (poststop).
# (c) A denied module (xfs) in KERNEL_MODULES: crun refuses to start the container. crun sends
#     hooks' output nowhere, so the reason must be in the hook's log; with the annotation
#     run.oci.hooks.stderr, crun appends it to the file that names.
# (b) CDI: `kmodload cdi generate` publishes the policy's modules; containerd 1.7 (enable_cdi)
#     edits the config.json of a pod that its "crun" runtime handler runs, with the device in
#     the container's CDI_devices (ip_vs, as a kubelet passes a device plugin's) and the one in
#     a cdi.k8s.io/ annotation (ip_vs_wrr): the same modules load, and go when the pod is
#     stopped. A device the spec does not publish (xfs) is refused by containerd.
CRUN=/usr/bin/crun
S17=/run/s17
s17_start() { # ID: crun run -d of bundle $S17/ID; crun's and the container's output in $S17/ID.out
  $CRUN run -d --no-pivot --bundle "$S17/$1" "$1" > "$S17/$1.out" 2>&1
}
s17_listed() { grep -q '^listed$' "$S17/$1.out"; }
s17_states() { # what the observer hooks saved: one "STAGE STATE" line each
  for _f in $S17/state.*; do echo "${_f#$S17/state.} $(cat "$_f")"; done
}
s17() {
  unload_all s17.before
  _s17_t0=$(uptime_ms)
  mkdir -p $S17
  # Holds that earlier scenarios' hooks left (scenario 8 names pid 1, which lives) would keep
  # modules loaded at poststop; they are not this scenario's.
  rm -rf /run/kmodload
  printf 'default deny\nallow ip_vs*\ndeny xfs\n' > $S17/policy.conf
  run s17.version $CRUN --version
  run s17.modprobe $MODPROBE -a ip_vs ip_vs_wrr
  unload_all s17.modprobe.clean

  # (a) hook-config's entries, then an observer per stage (sh saving its stdin and its
  # environment; an empty env, as hook-config writes)
  run s17.hooks $KMODLOAD hook-config --format oci --wrapper $HOOK --log $S17/hook.log \
    --policy $S17/policy.conf --unload-on-stop --timeout 120
  cp /tmp/run.out $S17/hooks.json
  node -e '
    const fs = require("fs");
    const [file, dir] = process.argv.slice(1);
    const printed = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const stage of ["prestart", "createRuntime", "poststop"]) {
      (printed.hooks[stage] ??= []).push({
        path: "/bin/sh",
        args: ["sh", "-c", `cat > ${dir}/state.${stage}; env | sort > ${dir}/env.${stage}`],
        env: [], timeout: 30 });
    }
    fs.writeFileSync(`${dir}/hooks-observed.json`, JSON.stringify(printed));
  ' $S17/hooks.json $S17
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json $S17/hooks-observed.json oci \
    ip_vs,ip_vs_wrr $S17/e2e-s17a /bin/sh -c 'cat /proc/modules; echo listed; exec /bin/busybox sleep 600'
  run s17.a.start s17_start e2e-s17a
  wait_until 30 s17_listed e2e-s17a
  run s17.a.seen cat $S17/e2e-s17a.out
  run s17.a.state $CRUN state e2e-s17a
  run s17.a.delete $CRUN delete -f e2e-s17a
  run s17.a.states s17_states
  run s17.a.env cat $S17/env.createRuntime

  # (c) refused
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json $S17/hooks.json oci xfs $S17/e2e-s17c
  run s17.c.run $CRUN run --no-pivot --bundle $S17/e2e-s17c e2e-s17c
  run s17.c.list $CRUN list
  $CRUN delete -f e2e-s17c > /dev/null 2>&1
  # crun's own way to see hooks' output: the annotation run.oci.hooks.stderr names a file.
  node -e '
    const fs = require("fs");
    const [file, err] = process.argv.slice(1);
    const config = JSON.parse(fs.readFileSync(file, "utf8"));
    config.annotations = { ...config.annotations, "run.oci.hooks.stderr": err };
    fs.writeFileSync(file, JSON.stringify(config));
  ' $S17/e2e-s17c/config.json $S17/hooks.err
  run s17.c2.run $CRUN run --no-pivot --bundle $S17/e2e-s17c e2e-s17c2
  $CRUN delete -f e2e-s17c2 > /dev/null 2>&1
  run s17.c2.stderr cat $S17/hooks.err
  run s17.log cat $S17/hook.log
  unload_all s17.ac.clean

  # (b) CDI through containerd
  run s17.cdi $KMODLOAD cdi generate --wrapper $HOOK --log $S17/cdi.log --policy $S17/policy.conf \
    --unload-on-stop --timeout 120
  run s17.spec node -e '
    const spec = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(spec.kind, spec.devices.map((d) => d.name).join(" "));' /etc/cdi/kmodload.json
  containerd_start $S17 s17.containerd
  run s17.import ctr -n k8s.io images import --snapshotter native /opt/cri/image.tar
  snapshot s17.b.before
  run s17.b.up cri up s17-b --runtime-handler crun --cdi-device kmodload.io/module=ip_vs \
    --annotation cdi.k8s.io/kmodload=kmodload.io/module=ip_vs_wrr
  # The containers crun runs for containerd's shim (its state under the shim's --root).
  run s17.b.crun $CRUN --root /run/containerd/runc/k8s.io list
  run s17.b.down cri down s17-b
  run s17.unknown.up cri up s17-u --runtime-handler crun --cdi-device kmodload.io/module=xfs
  run s17.unknown.down cri down s17-u
  stop_process $S17/containerd.pid
  run s17.cdilog cat $S17/cdi.log
  run s17.containerd.log tail -n 40 $S17/containerd.log
  outcome s17.time 0 "ms=$(($(uptime_ms) - _s17_t0))"
  unload_all s17.clean
}

# 18. Module parameters from containers, under runc with the hook's --unload-on-stop and a
# policy that names them (a state directory of its own, as scenario 16's). A asks for
# dummy numdummies=3 and gets three interfaces; B asks for ip_vs conn_tab_bits=11 (not the
# kernel's default 12, so that sysfs shows the container's value arrived); while they run, C
# (conn_tab_bits=14) and D (numdummies=5) are refused by A's and B's holds, E (a parameter no
# rule names) by the policy, and `status` tells who asked what; deleting A and B unloads what
# they loaded. Then, with modules modprobe loaded (no hold): dummy's numdummies (sysfs mode 0)
# cannot be verified (F refused); ip_vs conn_tab_bits=13 refuses 14 (G), runs 13 (H), and
# `kmodload load -o` only warns.
S18=/run/s18
s18_start() { # ID KERNEL_MODULES: a container that sleeps; runc's output on stderr
  mkdir -p "$S18/$1"
  sed "s/KERNEL_MODULES=REQUEST/KERNEL_MODULES=$2/" $S18/template/config.json > "$S18/$1/config.json"
  runc run -d --no-pivot --bundle "$S18/$1" "$1" > "$S18/$1.out" 2>&1
  _rc=$?
  cat "$S18/$1.out" >&2
  return $_rc
}
s18_refused() { # KEY ID KERNEL_MODULES: a container expected not to start; runc's leftovers go
  run "$1" s18_start "$2" "$3"
  runc delete -f "$2" > /dev/null 2>&1
}
s18() {
  unload_all s18.before
  _s18_t0=$(uptime_ms)
  mkdir -p $S18
  printf '%s\n' 'default deny' 'allow dummy ip_vs' 'params dummy numdummies=[0-9]' \
    'params ip_vs conn_tab_bits=1[0-9]' > $S18/policy.conf
  run s18.hooks $KMODLOAD hook-config --format isulad --wrapper $HOOK --log $S18/hook.log \
    --unload-on-stop --timeout 600 --policy $S18/policy.conf --state-dir $S18/state
  cp /tmp/run.out $S18/hooks.json
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json $S18/hooks.json isulad REQUEST \
    $S18/template /bin/busybox sleep 600
  run s18.net.before ls /sys/class/net
  run s18.a.start s18_start e2e-s18a 'dummy numdummies=3'
  run s18.a.net ls /sys/class/net
  run s18.b.start s18_start e2e-s18b 'ip_vs conn_tab_bits=11'
  run s18.b.param cat /sys/module/ip_vs/parameters/conn_tab_bits
  s18_refused s18.c.start e2e-s18c 'ip_vs conn_tab_bits=14'
  s18_refused s18.d.start e2e-s18d 'dummy numdummies=5'
  s18_refused s18.e.start e2e-s18e 'dummy foo=1'
  run s18.status $KMODLOAD status --state-dir $S18/state
  run s18.a.stop runc delete -f e2e-s18a
  run s18.b.stop runc delete -f e2e-s18b
  # Loaded by kmod's modprobe: no hold, and dummy's numdummies is not in sysfs.
  run s18.dummy $MODPROBE dummy
  s18_refused s18.f.start e2e-s18f 'dummy numdummies=5'
  run s18.dummy.remove $RMMOD dummy
  run s18.ipvs $MODPROBE ip_vs conn_tab_bits=13
  s18_refused s18.g.start e2e-s18g 'ip_vs conn_tab_bits=14'
  run s18.h.start s18_start e2e-s18h 'ip_vs conn_tab_bits=13'
  run s18.h.stop runc delete -f e2e-s18h
  run s18.cli $KMODLOAD load -o ip_vs=conn_tab_bits=14 ip_vs
  run s18.cli.param cat /sys/module/ip_vs/parameters/conn_tab_bits
  run s18.hooklog cat $S18/hook.log
  outcome s18.time 0 "ms=$(($(uptime_ms) - _s18_t0))"
  unload_all s18.clean
}

# 9. On a CPU without SSE4.2 crc32c_intel's init fails (ENODEV): do what modprobe does.
# This boot also carries scenarios 3, 4, 11 and 18, which do not depend on the CPU, so that
# the two boots of a kernel take about as long as each other.
set_qemu64() {
  install_hook
  run s9.modprobe $MODPROBE ip_vs
  unload_all s9.modprobe.clean
  run s9.kmodload $KMODLOAD load ip_vs
  unload_all s9.kmodload.clean
  # The seed's example through the runtime too, with the OCI snippet (createRuntime).
  make_bundle /run/s9 oci ip_vs,ip_vs_wrr
  run s9.runc runc run --no-pivot --bundle /run/s9 e2e-s9
  unload_all s9.runc.clean
  run s9.modprobe.seed $MODPROBE -a ip_vs ip_vs_wrr
  unload_all s9.clean
  s3
  s4
  s11
  s18
}

set_main() {
  install_hook
  s1
  s5
  s7
  s6
  s2
  s8
  s10
  s12
  s13
  s15
  # Only images built with --containerd (the 6.12 kernel's) have containerd and crun.
  if [ -x /usr/bin/containerd ]; then
    s14
    s17
  fi
}

# Checks the harness itself: kmod's modprobe loads the seed's set.
set_smoke() {
  run smoke.modprobe $MODPROBE -a ip_vs ip_vs_wrr
  unload_all smoke.clean
}

# Scenarios 12 and 13 alone: a quick manual check of the single executable (not used by the
# test suite).
set_nonode() {
  s12
  s13
}

# Scenario 14 alone: a quick manual check of containerd and the NRI plugin (not used by the
# test suite).
set_cri() {
  s14
}

# The main set and scenario 16 (the start/stop race, 50 rounds): one boot of the suite only,
# since the rounds take minutes under TCG.
set_main_race() {
  set_main
  s16
}

# Scenario 16 alone: a quick manual check (not used by the test suite).
set_race() {
  install_hook
  s16
}

# Scenario 17 alone: a quick manual check of crun (not used by the test suite; an image built
# with --containerd).
set_crun() {
  install_hook
  s17
}

# Scenario 18 alone: a quick manual check of parameters (not used by the test suite).
set_params() {
  install_hook
  s18
}

# Scenario 1 alone: a quick manual check of an image (not used by the test suite).
set_seed() {
  install_hook
  s1
}

# 15. The kernel's own autoload follows the policy once `policy export --format modprobe.d`
# is installed: a dummy link asks the kernel for rtnl-link-dummy, which /sbin/modprobe loads
# without the file and refuses with it (install dummy /bin/false). Autoload is on only here.
s15() {
  unload_all s15.before
  printf 'deny dummy\n' > /run/s15-policy.conf
  run s15.doctor.before sh -c "$KMODLOAD doctor --policy /run/s15-policy.conf | grep 'kernel autoload'"
  echo $MODPROBE > /proc/sys/kernel/modprobe
  run s15.without ip link add s15a type dummy
  ip link del s15a 2> /dev/null
  unload_all s15.mid
  run s15.export $KMODLOAD policy export --format modprobe.d --policy /run/s15-policy.conf \
    --output /etc/modprobe.d/kmodload-policy.conf
  run s15.file sh -c 'stat -c %a /etc/modprobe.d/kmodload-policy.conf; cat /etc/modprobe.d/kmodload-policy.conf'
  run s15.with ip link add s15b type dummy
  ip link del s15b 2> /dev/null
  echo > /proc/sys/kernel/modprobe
  run s15.doctor.after sh -c "$KMODLOAD doctor --policy /run/s15-policy.conf | grep 'kernel autoload'"
  rm -f /etc/modprobe.d/kmodload-policy.conf
  unload_all s15.clean
}

# `npm run demo` (scripts/demo/demo.js): the seed's example as a person would try it on a host,
# lsmod before and after a runc container that asks for KERNEL_MODULES=ip_vs,ip_vs_wrr
# through the hook as `kmodload hook-config` installs it (default log file). Under TCG a hook
# takes several seconds: the runtime's timeout is raised from its default 30 s.
set_demo() {
  run demo.before sh -c '/usr/sbin/lsmod | grep ip_vs'
  run demo.hook $KMODLOAD hook-config --format oci --install-wrapper $HOOK --timeout 120
  cp /tmp/run.out /run/hooks-oci.json
  node /opt/e2e/make-bundle.js /opt/e2e/config.template.json /run/hooks-oci.json oci \
    ip_vs,ip_vs_wrr /run/demo /bin/sh -c 'echo "container started, KERNEL_MODULES=$KERNEL_MODULES"'
  run demo.runc runc run --no-pivot --bundle /run/demo kmodload-demo
  run demo.after sh -c '/usr/sbin/lsmod | grep ip_vs'
  run demo.hooklog cat /var/log/kmodload/hook.log
}
