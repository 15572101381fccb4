// The module directory string, built exactly as modprobe builds it, because it is printed:
// with -d or -S it is "<root>/lib/modules/<version>" concatenated literally (`-d /` gives
// `//lib/modules/...`, `-d .` gives `<cwd>/./lib/modules/...`), made absolute against the
// working directory; without either it is /lib/modules/$(uname -r).
import * as fs from 'node:fs';
import * as os from 'node:os';

export function moduleDirectory(
  root: string | undefined,
  kernelVersion: string | undefined,
): string {
  if (root === undefined && kernelVersion === undefined) return `/lib/modules/${os.release()}`;
  const dir = `${root ?? ''}/lib/modules/${kernelVersion ?? os.release()}`;
  return dir.startsWith('/') ? dir : `${currentDirName()}/${dir}`;
}

/** glibc's get_current_dir_name(): $PWD when it names the working directory, else getcwd(). */
function currentDirName(): string {
  const pwd = process.env.PWD;
  const cwd = process.cwd();
  if (pwd && pwd.startsWith('/')) {
    try {
      const a = fs.statSync(pwd);
      const b = fs.statSync('.');
      if (a.dev === b.dev && a.ino === b.ino) return pwd;
    } catch {
      // fall through to getcwd()
    }
  }
  return cwd;
}
