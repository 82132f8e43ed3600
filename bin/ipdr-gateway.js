#!/usr/bin/env node
// The package's command. It runs the compiled CLI; `npm run build` (which
// `npm start` runs first) produces dist/.
import('../dist/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('ipdr-gateway: dist/ is missing; run `npm run build` first\n')
    process.exit(1)
  }
  throw err
})
