# The scenario sets. Each step records what happened (see lib.sh); the host decides whether
# it is right, so these scripts only drive the guest and never judge.

MODDIR=/lib/modules/$(uname -r)

# Checks the harness itself: kmod's modprobe loads the seed's set.
set_smoke() {
  run smoke.modprobe $MODPROBE -a ip_vs ip_vs_wrr
  unload_all smoke.clean
}

set_debug() {
  run debug.showdeps $MODPROBE -a --show-depends ip_vs ip_vs_wrr
  run debug.crc $MODPROBE -v crc32c_generic
  run debug.ls ls -la /lib/modules/ /lib/modules/$(uname -r)/ /lib/modprobe.d /etc/modprobe.d
  run debug.conf $MODPROBE -c
}
