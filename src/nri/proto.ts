// Protobuf for the NRI plugin: hand-written readers and writers of the few messages it
// exchanges, on @bufbuild/protobuf's wire-format BinaryReader/BinaryWriter. The subset is
// some fifteen messages of strings, varints, maps and nested messages; code generation would
// add a buf toolchain to the build and reflection-driven code to the bundle, for no behaviour
// this does not have. Fields not listed are skipped, so newer runtimes' additions pass.

import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { errorText } from '../text';
import { NriError } from './error';

/** How one known field is read: the wire type it must come with, and the reading. */
export type FieldReaders<T> = Record<number, [WireType, (reader: BinaryReader, into: T) => void]>;

/** Reads the fields of one message from `reader` until its end into `into`. A known field
 *  with another wire type is an error (as in Go's decoder); unknown fields are skipped. */
export function readFields<T>(reader: BinaryReader, into: T, fields: FieldReaders<T>): T {
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    const field = fields[fieldNo];
    if (field === undefined) {
      reader.skip(wireType, fieldNo);
    } else if (field[0] !== wireType) {
      throw new Error(`field ${fieldNo} has wire type ${wireType}, expected ${field[0]}`);
    } else {
      field[1](reader, into);
    }
  }
  return into;
}

/** A nested message's fields (the reader stands on its length prefix). */
export function readMessage<T>(reader: BinaryReader, into: T, fields: FieldReaders<T>): T {
  return readFields(new BinaryReader(reader.bytes()), into, fields);
}

/** One map<string, string> entry added to `map` (later entries win, as in Go). */
export function readStringMapEntry(reader: BinaryReader, map: Record<string, string>): void {
  const entry = readMessage(
    reader,
    { key: '', value: '' },
    {
      1: [WireType.LengthDelimited, (r, e) => (e.key = r.string())],
      2: [WireType.LengthDelimited, (r, e) => (e.value = r.string())],
    },
  );
  map[entry.key] = entry.value;
}

/** An empty map that no key can reach the prototype of ("__proto__" is a key like others). */
export function stringMap(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

/** Decodes `bytes` as `what` with `fields`; anything wrong is one NriError line. */
export function decode<T>(what: string, bytes: Uint8Array, into: T, fields: FieldReaders<T>): T {
  try {
    return readFields(new BinaryReader(bytes), into, fields);
  } catch (error) {
    throw new NriError(`malformed ${what} from the runtime: ${errorText(error)}`);
  }
}
