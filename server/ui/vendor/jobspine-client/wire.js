/**
 * The wire shapes the client reads and sends (docs/protocol.md). Hand-written until
 * src/generated/wire.ts (from packages/shared/schema/wire.schema.json) replaces them.
 */
export {};
