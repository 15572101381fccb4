#!/usr/bin/env bash
# Boots one guest under qemu (TCG) and waits for it to power off.
#
#   scripts/test/qemu/run-guest.sh VMLINUZ INITRD CPU APPEND CONSOLE_LOG RESULTS_LOG [TIMEOUT_S]
#
# The guest's console (ttyS0) goes to CONSOLE_LOG, the framed scenario results (ttyS1) to
# RESULTS_LOG. CPU is a qemu CPU model (max, qemu64, ...). APPEND is added to the kernel
# command line. Exits with qemu's status, or 124 when the guest ran past TIMEOUT_S (360).
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 VMLINUZ INITRD CPU APPEND CONSOLE_LOG RESULTS_LOG [TIMEOUT_S]" >&2; exit 2; }
kernel=$1 initrd=$2 cpu=$3 append=$4 console=$5 results=$6 limit=${7:-360}

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q qemu-system-x86 >/dev/null \
    || { apt-get update -qq >/dev/null && apt-get install -y -q qemu-system-x86 >/dev/null; }
fi

: > "$console"
: > "$results"
# Nested KVM does not work on these machines: TCG only. No NIC, no disk: the initramfs is
# the whole system. -no-reboot turns the guest's poweroff (or a panic) into qemu's exit.
# Single-threaded TCG: with one host thread per vCPU, the guest kernel's live code patching
# (static keys) sometimes hit a stale int3 and oopsed; two vCPUs still interleave, and the
# four guests of a run keep both host cores busy anyway.
exec timeout --kill-after=10 "$limit" qemu-system-x86_64 \
  -accel tcg,thread=single -cpu "$cpu" -smp 2 -m 2048 \
  -display none -monitor none -nic none -no-reboot \
  -serial "file:$console" -serial "file:$results" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet loglevel=4 panic=-1 $append"
