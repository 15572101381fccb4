# Shared functions of the guest's scenario scripts (busybox sh). Every observation goes to the second
# serial port as one framed JSON line; the host turns them into assertions:
#   @@KMODLOAD@@ {"key":..,"rc":..,"cmd":b64,"out":b64,"err":b64,"mods":"a b c","ms":..}
# `mods` lists /proc/modules after the step (a module not yet Live shows as name(State)).

RESULTS=/dev/ttyS1
FRAME='@@KMODLOAD@@'
# Debian's static busybox runs its own applets before PATH (modprobe included): kmod's tools,
# the oracle, are therefore always called by absolute path.
MODPROBE=/usr/sbin/modprobe
RMMOD=/usr/sbin/rmmod

uptime_ms() {
  read -r up _ < /proc/uptime
  echo $(( ${up%.*} * 1000 + 1${up#*.} * 10 - 1000 ))
}

mods_now() {
  awk '{ if ($5 == "Live") print $1; else print $1 "(" $5 ")" }' /proc/modules | sort | tr '\n' ' '
}

# emit KEY RC CMD OUTFILE ERRFILE MS
emit() {
  printf '%s {"key":"%s","rc":%d,"cmd":"%s","out":"%s","err":"%s","mods":"%s","ms":%d}\n' \
    "$FRAME" "$1" "$2" "$(printf %s "$3" | base64 -w0)" "$(base64 -w0 < "$4")" \
    "$(base64 -w0 < "$5")" "$(mods_now)" "$6" > "$RESULTS"
}

# run KEY CMD...: runs CMD, records its status, output and the modules afterwards.
run() {
  _key=$1
  shift
  _t0=$(uptime_ms)
  "$@" > /tmp/run.out 2> /tmp/run.err < /dev/null
  _rc=$?
  _t1=$(uptime_ms)
  emit "$_key" "$_rc" "$*" /tmp/run.out /tmp/run.err $((_t1 - _t0))
}

# run_stdin KEY FILE CMD...: the same with FILE on stdin.
run_stdin() {
  _key=$1 _in=$2
  shift 2
  _t0=$(uptime_ms)
  "$@" > /tmp/run.out 2> /tmp/run.err < "$_in"
  _rc=$?
  _t1=$(uptime_ms)
  emit "$_key" "$_rc" "$*" /tmp/run.out /tmp/run.err $((_t1 - _t0))
}

# note KEY TEXT: a plain observation.
note() {
  printf '%s\n' "$2" > /tmp/note.out
  : > /tmp/note.err
  emit "$1" 0 note /tmp/note.out /tmp/note.err 0
}

# outcome KEY RC TEXT: a step that is not one command (a wait, a background process), told
# in words with the status it ended with.
outcome() {
  printf '%s\n' "$3" > /tmp/outcome.out
  : > /tmp/outcome.err
  emit "$1" "$2" outcome /tmp/outcome.out /tmp/outcome.err 0
}

# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds (status 0) or SECONDS have
# passed (status 1).
wait_until() {
  _limit=$(($(uptime_ms) + $1 * 1000))
  shift
  until "$@"; do
    [ "$(uptime_ms)" -lt "$_limit" ] || return 1
    sleep 0.2
  done
}

# snapshot KEY: the module list now.
snapshot() {
  : > /tmp/snap.out
  emit "$1" 0 snapshot /tmp/snap.out /tmp/snap.out 0
}

# unload_all KEY: back to the state at boot, removing unused modules until none is left
# (kmod's rmmod, one module at a time, so no loader under test is involved).
unload_all() {
  _pass=0
  while [ $_pass -lt 40 ]; do
    _removed=0
    for _m in $(awk '$3 == 0 {print $1}' /proc/modules); do
      case " $BASELINE " in *" $_m "*) continue ;; esac
      $RMMOD "$_m" 2> /dev/null && _removed=1
    done
    [ $_removed = 1 ] || break
    _pass=$((_pass + 1))
  done
  snapshot "$1"
}

begin() {
  stty -F "$RESULTS" raw -echo 2> /dev/null
  # The kernel's own module autoloading (request_module -> /sbin/modprobe) would load what a
  # loader forgot, e.g. a crc32c implementation for libcrc32c. Switch it off so every module
  # in /proc/modules was loaded by the tool under test.
  echo > /proc/sys/kernel/modprobe
  BASELINE=$(mods_now)
  {
    echo "set=$1"
    echo "uname=$(uname -r)"
    echo "cmdline=$(cat /proc/cmdline)"
    echo "compression=$(cat /sys/module/compression 2> /dev/null || echo none)"
    echo "cpu_sse4_2=$(grep -c -w sse4_2 /proc/cpuinfo)"
    echo "uptime_ms=$(uptime_ms)"
  } > /tmp/begin.out
  : > /tmp/begin.err
  emit begin 0 begin /tmp/begin.out /tmp/begin.err 0
}

finish() {
  dmesg > /tmp/dmesg.out 2>&1
  : > /tmp/dmesg.err
  emit dmesg 0 dmesg /tmp/dmesg.out /tmp/dmesg.err 0
  echo "uptime_ms=$(uptime_ms)" > /tmp/end.out
  emit end 0 end /tmp/end.out /tmp/dmesg.err 0
  sync
}
