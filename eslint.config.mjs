// One lint configuration for the whole project: type-aware rules for src/, plain JavaScript rules
// for the tests, benchmarks and scripts; formatting is prettier's alone (eslint-config-prettier).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/, lowest first (docs/architecture.md): a folder imports from its own and from
 * lower layers only, never from a higher one or from a sibling of its own layer; index.ts and
 * mock.ts stand on top. One entry per folder, generated, so that a new folder gets its rule here.
 */
const LAYERS = [['common'], ['process'], ['virtiofsd', 'nydusd'], ['kata', 'metrics'], ['cli']];
const layerRules = LAYERS.flatMap((layer, level) =>
  layer.map((folder) => {
    const above = LAYERS.slice(level + 1).flat();
    const siblings = layer.filter((f) => f !== folder);
    const banned = [...above, ...siblings];
    return {
      files: [`src/${folder}/**/*.ts`],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: [
              {
                group: [...banned.map((f) => `../${f}/*`), '../index.js', '../mock.js'],
                message: `src/${folder}/ may import only from itself and the layers below it (${
                  LAYERS.slice(0, level).flat().join(', ') || 'none'
                }): see docs/architecture.md`,
              },
            ],
          },
        ],
      },
    };
  }),
);

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'prebuilds/'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A promise nobody awaits loses its rejection: every one must be awaited, returned or voided.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  { files: ['**/*.mjs'], languageOptions: { sourceType: 'module' } },
  ...layerRules,
  prettier,
);
