/**
 * The Trisul IPDR API emulator (shared/SPEC.md section 7): a separate program
 * that the gateway never imports. The CLI wires these into `ipdr-gateway emulator`.
 */
export { buildEmulator } from './app.js'
export type { Envelope, EnvelopeStatus } from './envelopes.js'
export {
  EMULATOR_HELP,
  type EmulatorOptions,
  type EmulatorUser,
  parseEmulatorArgs,
} from './options.js'
export { type RunningEmulator, startEmulator } from './server.js'
export type { CustomerRecord, MappingRecord } from './store.js'
