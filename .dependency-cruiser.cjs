// Import cycles among the project's own modules (`npm run lint`: depcruise over src/).
// Every edge counts, lazy ones too: type-only imports (tsPreCompilationDeps), `import()`,
// `require()` and `import x = require()`; a module importing itself is a cycle.
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'modules of this package must not import each other in a cycle',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
  },
};
