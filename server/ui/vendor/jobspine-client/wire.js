/**
 * The wire types the client uses, by the names its API speaks. Every shape comes from
 * src/generated/wire.ts, generated from packages/shared/schema/wire.schema.json (the one
 * source of truth for server and clients); only the REST list query is the client's own.
 */
export {};
