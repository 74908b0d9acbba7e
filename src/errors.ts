/**
 * @module errors
 * Every error this server raises on purpose, with a stable `code` callers match on
 * (the undici/fastify habit). docs/errors.md lists them with how to fix each one.
 */

export class GslbError extends Error {
  readonly code: string = 'GSLB_ERR'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** Where a problem sits in an operator-edited file; `field` names the part of the line at fault. */
export interface SourcePos {
  readonly file: string
  readonly line: number
}

/** One problem found while loading a zone file. Loading collects all of them before giving up. */
export class ZoneError extends GslbError {
  override readonly code = 'GSLB_ERR_ZONE'
  readonly file: string
  readonly line: number
  readonly field: string
  readonly detail: string
  constructor(pos: SourcePos, field: string, detail: string) {
    super(`${pos.file}:${pos.line}: ${field}: ${detail}`)
    this.file = pos.file
    this.line = pos.line
    this.field = field
    this.detail = detail
  }
}

/** Bad command-line flag or server configuration value. */
export class ConfigError extends GslbError {
  override readonly code = 'GSLB_ERR_CONFIG'
}

/** A presentation-format domain name that cannot be encoded (label too long, bad escape, ...). */
export class NameError extends GslbError {
  override readonly code = 'GSLB_ERR_NAME'
}

/** A geo database file that cannot be opened or provides none of the known schemas. */
export class GeoDatabaseError extends GslbError {
  override readonly code = 'GSLB_ERR_GEOIP'
  readonly file: string
  constructor(file: string, detail: string, options?: ErrorOptions) {
    super(`${file}: ${detail}`, options)
    this.file = file
  }
}

/** Redis is unreachable or answered an error; callers keep their last view and retry. */
export class RedisStoreError extends GslbError {
  override readonly code = 'GSLB_ERR_REDIS'
}
