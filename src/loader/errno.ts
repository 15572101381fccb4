// Turns kernel and file errors into the { code, errno, message } a ModuleResult carries, with a
// text a person can act on (the kernel's errno alone rarely says what to do).

import { errnoNumber } from '../errno';
import { errorText } from '../text';

export interface ModuleError {
  /** 'ENOSYS', 'EPERM' ... as Node names errno values. */
  code: string;
  /** Positive errno, 0 when the failure is not an errno (an install command's exit status:
   *  code 'ECOMMAND'). */
  errno: number;
  /** One line: what failed and, where useful, why. */
  message: string;
}

// What the kernel means by each errno when it answers finit_module/init_module/delete_module.
const KERNEL_MEANING: Record<string, string> = {
  ENOSYS: 'Function not implemented: the running kernel has no module support',
  EPERM:
    'Operation not permitted: needs CAP_SYS_MODULE, or module loading is disabled ' +
    '(kernel.modules_disabled) or the module is blacklisted on the kernel command line',
  ENOEXEC: 'Exec format error: not a valid module for this kernel (wrong version or architecture)',
  ENOENT: 'Unknown symbol in module, or unknown parameter (see dmesg)',
  EINVAL: 'Invalid argument: bad parameter or module image (see dmesg)',
  EEXIST: 'Module already in kernel',
  ENODEV: 'No such device: the module found no hardware or CPU feature it needs',
  EKEYREJECTED: 'Key was rejected by service: module signature rejected',
  EKEYEXPIRED: 'Key has expired: module signature rejected',
  ENOKEY: 'Required key not available: module signature rejected',
  EBADMSG: 'Bad message: malformed module signature or image',
  EBUSY: 'Device or resource busy',
  EAGAIN: 'Resource temporarily unavailable: module in use',
  EWOULDBLOCK: 'Resource temporarily unavailable: module in use',
  ENOMEM: 'Cannot allocate memory',
  EFAULT: 'Bad address',
  ETXTBSY: 'Text file busy: module file is open for writing',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
};

function errnoOf(code: string, fallback: unknown): number {
  if (typeof fallback === 'number' && Number.isFinite(fallback) && fallback !== 0) {
    return Math.abs(fallback);
  }
  return errnoNumber(code);
}

/** A failure this package decides itself, with an errno code ('EPERM', 'ENOENT'...). */
export function moduleError(code: string, message: string): ModuleError {
  return { code, errno: errnoNumber(code), message };
}

/** An install command that ran and failed: not an errno, its exit status is in the message. */
export function commandError(message: string): ModuleError {
  return { code: 'ECOMMAND', errno: 0, message };
}

/** The code of an error value, if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An error from a module syscall (finit_module, init_module, delete_module). */
export function kernelError(error: unknown): ModuleError {
  const code = errorCode(error) ?? 'EUNKNOWN';
  const errno = errnoOf(code, (error as { errno?: unknown } | null)?.errno);
  const meaning = KERNEL_MEANING[code];
  const message = meaning ? `${meaning} (${code})` : `${errorText(error)} (${code})`;
  return { code, errno, message };
}

/** An error reading or decompressing the module file: it says which file. */
export function fileError(error: unknown, what: string): ModuleError {
  const code = errorCode(error) ?? 'EIO';
  const errno = errnoOf(code, (error as { errno?: unknown } | null)?.errno);
  return { code, errno, message: `${what}: ${errorText(error)}` };
}
