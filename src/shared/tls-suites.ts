/**
 * The TLS 1.2 suites the gateway offers (SPEC 13): Mozilla's "intermediate"
 * list without its DHE suites, i.e. ECDHE key exchange (forward secrecy) with
 * AEAD ciphers only. Node's default list also offers static-RSA and CBC-SHA1
 * suites. Shared by the listener (src/http/server/tls.ts) and the policy check of
 * `server.tls.ciphers`.
 */
export const TLS12_CIPHERS: readonly string[] = Object.freeze([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
])
