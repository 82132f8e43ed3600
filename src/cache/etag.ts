/**
 * Strong entity tags for cached listings (RFC 9110 8.8.3). A tag is a digest
 * of the exact bytes sent, so two fills with identical upstream bytes share a
 * tag and any change of content changes it.
 */
import { createHash, type Hash } from 'node:crypto'

/** 27 base64url characters are 162 bits of SHA-256: collisions are not a practical concern. */
const TAG_CHARS = 27

/** `"` + base64url(sha256(bytes)).slice(0, 27) + `"`. */
export function strongEtag(bytes: Buffer): string {
  return strongEtagOf(createHash('sha256').update(bytes))
}

/** The strong tag of the bytes a SHA-256 `hash` was fed, piece by piece (the same as `strongEtag` of them joined). */
export function strongEtagOf(hash: Hash): string {
  return `"${hash.digest('base64url').slice(0, TAG_CHARS)}"`
}

/**
 * A strong tag for a representation derived from another one (a filtered
 * page, a single record, a redacted view): a digest of the base tag and the
 * parts that select the derivation. Cheap (no pass over the body) and it
 * changes whenever the base listing changes.
 */
export function deriveEtag(baseEtag: string, parts: readonly string[]): string {
  // JSON keeps the parts unambiguous (['a,b'] and ['a', 'b'] differ).
  const digest = createHash('sha256')
    .update(JSON.stringify([baseEtag, ...parts]))
    .digest('base64url')
  return `"${digest.slice(0, TAG_CHARS)}"`
}
