// The single executable's main script (npm run build:binary bundles it into build/kmodload):
// the executable is node itself, so process.argv is [executable, executable, ARGS...].
import { run } from './entry';

run(process.argv.slice(2));
