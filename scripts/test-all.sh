#!/usr/bin/env bash
# `npm test`: every test, on a fresh machine too. Installs the Debian packages the tests need,
# builds the TypeScript, runs the whole vitest suite (unit, native, differential against
# modprobe, runc, qemu), then the native tests again under AddressSanitizer/UBSan and a short
# fuzzing run of the index reader.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
[ -f build/Release/kmodload.node ] || npx node-gyp rebuild
npx tsc -p tsconfig.build.json

report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
node -e '
  const r = require(process.argv[1]);
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$report" || status=1
rm -f "$report"
[ $status -eq 0 ] || exit $status

bash scripts/test-asan.sh
bash scripts/fuzz.sh "${KMODLOAD_FUZZ_SECONDS:-20}"
