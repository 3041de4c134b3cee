import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/**
 * Extracts every `export const NAME_JS = \`...\`;` template (browser code, no interpolation) as a
 * virtual `<file>/<n>_<NAME>.js`; messages are moved back to the line in the .ts file.
 */
const browserScripts = {
  meta: { name: 'camrelay-browser-scripts' },
  preprocess(text) {
    const blocks = [text];
    const offsets = [0];
    const re = /^export const (\w+_JS) = `([\s\S]*?)^`;/gm;
    for (let m; (m = re.exec(text)); ) {
      offsets.push(text.slice(0, m.index).split('\n').length - 1);
      // the served text: template escapes (\\ \` \$) cooked
      blocks.push({ text: m[2].replace(/\\([\\`$])/g, '$1'), filename: `${m[1]}.js` });
    }
    browserScripts.offsets = offsets;
    return blocks;
  },
  postprocess(messages) {
    const offsets = browserScripts.offsets ?? [0];
    return messages.flatMap((list, i) => list.map((msg) => ({ ...msg, line: msg.line + offsets[i], ...(msg.endLine ? { endLine: msg.endLine + offsets[i] } : {}), fix: i === 0 ? msg.fix : undefined })));
  },
  supportsAutofix: true,
};

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'reports/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // The viewer's browser script is a template string in viewer-page.ts (served as /viewer.js):
  // the processor hands it to ESLint as a virtual file, linted with browser globals.
  {
    files: ['relay/src/outlets/viewer-page.ts'],
    processor: browserScripts,
  },
  {
    files: ['relay/src/outlets/viewer-page.ts/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
);
