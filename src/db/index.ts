// The module database: the tree's indexes and modprobe.d, asked in kmod's order.
export {
  ModuleDatabase,
  type DepEntry,
  type IndexReading,
  type LookupResult,
  type ModuleRef,
  type ResolverOptions,
} from './database';
export { fnmatch, type Matcher } from './fnmatch';
export { TEXT_FILES, type IndexKind } from './indexes';
export { moduleDirectory } from './module-dir';
export type { KeyIndex } from './trie';
