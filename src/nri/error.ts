// The one error type of the NRI plugin: its message is one line, for the plugin's log (or, as
// a ttrpc status, for the runtime's).

/** A protocol violation that ends a connection, a refused call, or a bad plugin setting. */
export class NriError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NriError';
  }
}
