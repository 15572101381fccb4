// The streams and environment a command runs with: process's own for the real CLI, buffers in
// tests, and the runtime's (stdin = OCI state) for the hook.

export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}
