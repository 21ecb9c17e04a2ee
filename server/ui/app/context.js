// The types every view receives (JSDoc, checked by tsc: server/ui/tsconfig.json).

/**
 * @typedef {{states: string[], user_actions: Record<string, string[]>, ended_states: string[]}} StatesDocument
 * @typedef {import("@jobspine/client").JobspineClient} Client
 * @typedef {import("@jobspine/client").Job} Job
 * @typedef {{client: Client, api: import("./api.js").Api, session: import("./session.js").Session,
 *   table: StatesDocument}} Context
 * @typedef {{refresh: () => void, destroy: () => void}} View
 */

export {};
