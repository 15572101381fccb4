// Where holds live unless told otherwise. A module of its own, without imports: the hook's
// help and option parsing need it on the path where nothing else may be loaded.
export const DEFAULT_STATE_DIR = '/run/kmodload';
