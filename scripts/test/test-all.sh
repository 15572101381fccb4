#!/usr/bin/env bash
# `npm test`: every test, on a fresh machine too. Installs the Debian packages the tests need,
# fetches the kernel fixtures, Debian 13's containerd (the 6.12 guest's) and the Debian 11
# root, builds (the prebuilt addons too), then runs: the vitest suites (unit, native,
# differential against modprobe, runc, install on a fresh host), the qemu suite on its own (its
# guests want both cores), the native tests again under AddressSanitizer/UBSan, and a short
# fuzzing run of the index reader.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/test/install-test-deps.sh
bash scripts/test/fetch-kernels.sh >/dev/null
bash scripts/test/fetch-containerd.sh >/dev/null
[ -f build/Release/kmodload.node ] || npx node-gyp rebuild
npx tsc -p tsconfig.build.json
node scripts/make/bundle.js

passed=0
failed=0
status=0
# Runs vitest with a JSON report and adds its counts to the totals.
suite() {
  local report
  report=$(mktemp)
  npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=1
  if [ -s "$report" ]; then
    read -r p f < <(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(r.numPassedTests, r.numFailedTests)' "$report" || echo 0 1)
    passed=$((passed + p))
    failed=$((failed + f))
  else
    status=1
  fi
  rm -f "$report"
}

# The addons npm pack ships (test/deploy installs the packed tarball on a Debian 11 root), and
# the Debian 13 root whose podman runs the CDI devices (test/runtime/podman-cdi).
bash scripts/test/fetch-roots.sh >/dev/null || status=1
bash scripts/test/fetch-roots.sh trixie-podman >/dev/null || status=1
bash scripts/make/prebuild.sh >/dev/null || status=1

suite --exclude 'test/e2e/**'
suite test/e2e
bash scripts/test/test-asan.sh || status=1
bash scripts/test/fuzz.sh "${KMODLOAD_FUZZ_SECONDS:-20}" || status=1

echo "vitest: $passed passed, $failed failed"
exit $status
