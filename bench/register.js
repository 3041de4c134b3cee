/**
 * Lets `node -r ./bench/register.js bench/src/run.ts` run the benchmark harness straight from its
 * TypeScript sources (and the shared test-support/ and fake-camera/src helpers it imports): each .ts
 * file is transpiled on load with the project's own TypeScript compiler. Type-checking happens in
 * `npm run lint` (tsconfig.test.json includes bench/), not here.
 */
const fs = require('node:fs');
const ts = require('typescript');

require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const out = ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
  });
  module._compile(out.outputText, filename);
};
