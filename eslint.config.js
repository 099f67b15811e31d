// Lint: typescript-eslint's recommended rules plus the layer arrows of
// docs/architecture.md. An import that points up a layer is a build failure.
import tseslint from 'typescript-eslint'

const libp2p = ['libp2p', 'libp2p/*', '@libp2p/*', '@chainsafe/*']

/** A rule forbidding imports of the given layers (relative paths) and packages. */
function forbid (layers, packages = []) {
  return {
    'no-restricted-imports': ['error', {
      patterns: [
        ...layers.map(l => ({ group: [`**/${l}/*`, `**/${l}`], message: `this layer may not import src/${l} (see docs/architecture.md)` })),
        ...(packages.length > 0 ? [{ group: packages, message: 'this layer may not import libp2p (see docs/architecture.md)' }] : [])
      ]
    }]
  }
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', 'src/proto/**', '.bench/**', 'test-artifacts/**', 'scratch/**', '.demo/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }]
    }
  },
  { files: ['src/content/**/*.ts'], rules: forbid(['cli', 'agent', 'net', 'core'], libp2p) },
  { files: ['src/trust/**/*.ts'], rules: forbid(['cli', 'agent', 'net', 'core'], libp2p) },
  { files: ['src/core/**/*.ts'], rules: forbid(['cli', 'agent', 'net', 'trust'], libp2p) },
  { files: ['src/net/**/*.ts'], rules: forbid(['cli', 'agent']) },
  { files: ['src/agent/**/*.ts'], rules: forbid(['cli']) },
  { files: ['sim/**/*.ts'], rules: forbid(['cli', 'agent', 'net'], libp2p) },
  { files: ['**/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } }
)
